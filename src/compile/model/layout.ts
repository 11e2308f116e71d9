/**
 * Where each file of the config repository belongs (docs/architecture.md, "The config repository"):
 *
 *   meshcfg.yaml             settings
 *   inventory/*.yaml         inventory
 *   config/base/*.yaml       base layers, every agent
 *   config/overlays/*.yaml   overlays, agents their `match` selects
 *   config/agents/<id>.yaml  one agent's layer, applied last
 *   baseline/*.yaml          the baseline bundle's layers
 *
 * Anything else inside those directories would be silently ignored, which hides mistakes
 * (`10-pci.yml`, a nested `overlays/team/x.yaml`), so it is reported as `misplaced` — except
 * dotfiles (`.gitkeep`) and Markdown notes. Files outside those directories are not ours.
 */
export type FileRole =
  | { readonly kind: 'settings' }
  | { readonly kind: 'inventory' }
  | { readonly kind: 'base' }
  | { readonly kind: 'overlay' }
  | { readonly kind: 'agent'; readonly agentId: string }
  | { readonly kind: 'baseline' }
  | { readonly kind: 'misplaced'; readonly reason: string }
  | { readonly kind: 'ignored' };

export const SETTINGS_PATH = 'meshcfg.yaml';

const DIRECTORIES: ReadonlyArray<readonly [prefix: string, role: 'inventory' | 'base' | 'overlay' | 'agent' | 'baseline']> = [
  ['inventory/', 'inventory'],
  ['config/base/', 'base'],
  ['config/overlays/', 'overlay'],
  ['config/agents/', 'agent'],
  ['baseline/', 'baseline'],
];

export function classifyPath(path: string): FileRole {
  if (path === SETTINGS_PATH) return { kind: 'settings' };
  for (const [prefix, role] of DIRECTORIES) {
    if (!path.startsWith(prefix)) continue;
    const name = path.slice(prefix.length);
    const base = name.slice(name.lastIndexOf('/') + 1);
    if (base.startsWith('.') || base.endsWith('.md')) return { kind: 'ignored' };
    if (name.includes('/')) return { kind: 'misplaced', reason: `subdirectories of ${prefix} are not read` };
    if (!name.endsWith('.yaml')) return { kind: 'misplaced', reason: `only *.yaml files in ${prefix} are read` };
    const stem = name.slice(0, -'.yaml'.length);
    return role === 'agent' ? { kind: 'agent', agentId: stem } : { kind: role };
  }
  if (path === 'meshcfg.yml') return { kind: 'misplaced', reason: `the settings file is ${SETTINGS_PATH}` };
  return { kind: 'ignored' };
}

/**
 * File-name order for layers: ordinal comparison of UTF-16 code units, never locale-aware,
 * so every replica orders `10-a.yaml` before `9-b.yaml` the same way (use zero-padded prefixes).
 */
export function compareOrdinal(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
