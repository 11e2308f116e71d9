import type { AgentId, JsonValue, Labels, RuleId, Violation } from '../domain/types.js';
import { contentKey, type Memo } from './cache.js';
import type { Layer } from './model/repository.js';
import { mergeWithProvenance, type Provenance } from './provenance.js';
import type { CompiledBundle, Finding, PolicyRule, PolicySettings, PolicySubjectId } from './types.js';
import { lineOfPointer } from './yaml.js';

/** Validates an agent config document against the shipped schema. */
export type AgentValidator = (doc: JsonValue) => readonly Finding[];

/** A finding with the rule that made it; what the caches hold (no agent, no file: those vary by agent). */
export interface RuleFinding {
  readonly rule: RuleId;
  readonly path: string;
  readonly message: string;
}

export interface CheckerDeps {
  readonly validate: AgentValidator;
  readonly rules: readonly PolicyRule[];
  readonly schema: Memo<readonly RuleFinding[]>;
  readonly policy: Memo<readonly RuleFinding[]>;
  readonly provenance: Memo<Provenance<Layer>>;
  /** Line of a pointer in a blob; `0` when it cannot be located. */
  readonly location: Memo<number>;
}

/** What a policy rule may see of an agent besides its document. */
export interface PolicySubject {
  readonly id: PolicySubjectId;
  readonly labels: Labels;
  /** Content key of `labels`. */
  readonly labelKey: string;
}

const NO_FINDINGS: readonly RuleFinding[] = Object.freeze([]);

/**
 * Schema and policy checks of compiled documents, and attribution of their findings to the
 * repository file (and line) that introduced the offending value.
 *
 * Caching contract: schema findings are a function of the document alone, so they are keyed
 * by digest. Policy findings are keyed by digest, policy settings and the agent's whole label
 * set — not only its secure-zone membership, which is all today's rules read, because a future
 * label-dependent rule must not inherit another agent's verdict. Agents with identical labels
 * and documents (the common case) still share one evaluation. Rules must therefore not let the
 * agent *id* influence findings; the built-in rules don't.
 */
export class Checker {
  private readonly deps: CheckerDeps;

  constructor(deps: CheckerDeps) {
    this.deps = deps;
  }

  schemaFindings(bundle: CompiledBundle): readonly RuleFinding[] {
    return this.deps.schema.get(bundle.digest, () =>
      freezeFindings('schema', this.deps.validate(bundle.document)),
    );
  }

  /** `policyKey` is a content key of `policy`, computed once per compile by the caller. */
  policyFindings(bundle: CompiledBundle, subject: PolicySubject, policy: PolicySettings, policyKey: string): readonly RuleFinding[] {
    return this.deps.policy.get(`${bundle.digest}\u0000${policyKey}\u0000${subject.labelKey}`, () => {
      const context = { agentId: subject.id, labels: subject.labels, document: bundle.document, policy };
      const findings: RuleFinding[] = [];
      for (const rule of this.deps.rules) {
        for (const { path, message } of rule.check(context)) findings.push(Object.freeze({ rule: rule.id, path, message }));
      }
      return findings.length === 0 ? NO_FINDINGS : Object.freeze(findings);
    });
  }

  /**
   * Turns findings on a document merged from `layers` into violations naming the file that
   * introduced the value at (or nearest above) each finding's path. Provenance is computed
   * only here, so clean documents never pay for it.
   */
  attribute(findings: readonly RuleFinding[], layers: readonly Layer[], agent: AgentId | undefined): Violation[] {
    if (findings.length === 0) return [];
    const provenance = this.deps.provenance.get(
      contentKey(layers.map((layer) => `${layer.file}\u0000${layer.oid}\u0000${layer.key}`)),
      () => mergeWithProvenance(layers.map((layer) => ({ source: layer, document: layer.document }))).provenance,
    );
    return findings.map((finding) => {
      const origin = provenance.originOf(finding.path);
      const line = origin === undefined ? 0 : this.lineOf(origin.source, finding.path, origin.pointer);
      return Object.freeze({
        rule: finding.rule,
        ...(agent === undefined ? {} : { agent }),
        ...(origin === undefined ? {} : { file: origin.source.file }),
        path: finding.path,
        ...(line > 0 ? { line } : {}),
        message: finding.message,
      });
    });
  }

  /**
   * The line of the value in the layer's file: the finding's own path when the file has it,
   * else the nearest value above it, down to the value the layer set (`origin`) — a finding
   * may name a member that is missing.
   */
  private lineOf(layer: Layer, path: string, origin: string): number {
    for (let pointer = path; ; pointer = pointer.slice(0, pointer.lastIndexOf('/'))) {
      const inFile = `${layer.pointerInFile}${pointer}`;
      const line = this.deps.location.get(`${layer.oid}\u0000${inFile}`, () => lineOfPointer(layer.bytes, inFile) ?? 0);
      if (line > 0) return line;
      if (pointer.length <= origin.length) return 0;
    }
  }
}

function freezeFindings(rule: RuleId, findings: readonly Finding[]): readonly RuleFinding[] {
  if (findings.length === 0) return NO_FINDINGS;
  return Object.freeze(findings.map((finding) => Object.freeze({ rule, path: finding.path, message: finding.message })));
}
