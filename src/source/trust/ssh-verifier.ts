import { TrustError } from '../../domain/errors.js';
import { authorizeKey, type AllowedSigners } from './allowed-signers.js';
import { parseSshSignature, verifySshSignature } from './sshsig.js';
import type { DetachedSignature, SignatureVerifier, SignerIdentity } from './verifier.js';

export interface SshVerifierOptions {
  readonly allowedSigners: AllowedSigners;
  /** The sshsig namespace signatures must be made in; git signs commits and tags in `git`. */
  readonly namespace?: string;
}

/**
 * Verifies git's SSH signatures (gpg.format=ssh) against an allowed-signers list, with the
 * verdicts of `ssh-keygen -Y verify` split into error codes:
 *
 * 1. the signature parses (MALFORMED_SIGNATURE / UNSUPPORTED_SIGNATURE);
 * 2. it is cryptographically valid for the key it carries (BAD_SIGNATURE) — checked
 *    before any policy, so "valid but untrusted" is never said of a forgery;
 * 3. it was made in the `git` namespace, so a signature over a file cannot pass as a
 *    commit signature (NAMESPACE_MISMATCH);
 * 4. the policy lists the key for that namespace (UNTRUSTED_SIGNER, or NAMESPACE_MISMATCH
 *    when only `namespaces=` excludes it) and `at` lies in its validity window
 *    (UNTRUSTED_SIGNER).
 */
export class SshSignatureVerifier implements SignatureVerifier {
  readonly format = 'ssh';
  private readonly options: Required<SshVerifierOptions>;

  constructor(options: SshVerifierOptions) {
    this.options = { allowedSigners: options.allowedSigners, namespace: options.namespace ?? 'git' };
  }

  accepts(signature: DetachedSignature): boolean {
    return signature.kind === 'ssh';
  }

  async verify(payload: Uint8Array, signature: DetachedSignature, at: Date): Promise<SignerIdentity> {
    const { allowedSigners, namespace } = this.options;
    const sig = parseSshSignature(signature.armored);
    const fingerprint = sig.publicKey.fingerprint;
    if (!verifySshSignature(sig, payload)) {
      refuse('BAD_SIGNATURE', `signature by ${sig.publicKey.type} key ${fingerprint} does not match the commit`);
    }
    if (sig.namespace !== namespace) {
      refuse('NAMESPACE_MISMATCH', `signature was made for namespace ${JSON.stringify(sig.namespace)}, not ${JSON.stringify(namespace)}`);
    }

    const decision = authorizeKey(allowedSigners, sig.publicKey, namespace, at);
    const where = allowedSigners.source;
    switch (decision.kind) {
      case 'allowed':
        return { signer: decision.signer.principals.join(','), keyFingerprint: fingerprint };
      case 'unknown-key':
        return refuse('UNTRUSTED_SIGNER', `key ${fingerprint} is not listed in ${where}`);
      case 'namespace-excluded':
        return refuse(
          'NAMESPACE_MISMATCH',
          `key ${fingerprint} is not allowed to sign in namespace ${JSON.stringify(namespace)} (${where} line ${decision.lines.join(', ')})`,
        );
      case 'outside-validity':
        return refuse(
          'UNTRUSTED_SIGNER',
          `key ${fingerprint} is not valid at ${at.toISOString()} (${where} line ${decision.lines.join(', ')})`,
        );
    }
  }
}

function refuse(code: 'BAD_SIGNATURE' | 'UNTRUSTED_SIGNER' | 'NAMESPACE_MISMATCH', message: string): never {
  throw new TrustError({ code, message });
}
