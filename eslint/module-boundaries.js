/**
 * ESLint rule `meshcfg/module-boundaries`: the module map of docs/architecture.md, enforced.
 *
 * Every relative import in `src/` is resolved against the importing file, and both ends are
 * named by their module (the folder under `src/`, or a nested module such as `source/trust`
 * when the map lists it). An import into another module must
 * - be allowed by the map (`upward` otherwise: the arrows point one way, toward `domain`);
 * - go through that module's `index.ts` (`deep` otherwise), except for the modules listed in
 *   `indexFree` (`domain`: a folder of leaf types imported file by file).
 * A folder under `src/` the map does not list is reported (`unmapped`), so a new module
 * cannot slip past the map.
 */
import { relative, resolve, sep } from 'node:path';

/** @type {import('eslint').Rule.RuleModule} */
export const moduleBoundaries = {
  meta: {
    type: 'problem',
    docs: { description: 'Imports across src/ modules follow the module map of docs/architecture.md and go through index.ts' },
    schema: [
      {
        type: 'object',
        properties: {
          modules: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
          indexFree: { type: 'array', items: { type: 'string' } },
        },
        required: ['modules'],
        additionalProperties: false,
      },
    ],
    messages: {
      upward: 'src/{{from}}/ may not import src/{{to}}/ (docs/architecture.md, module map: {{from}} may import {{allowed}})',
      deep: "import src/{{to}}/ through its index ('{{index}}'), not {{file}}",
      unmapped: 'src/{{module}}/ is not in the module map (eslint.config.js and docs/architecture.md)',
    },
  },
  create(context) {
    const { modules, indexFree = [] } = context.options[0];
    const file = context.physicalFilename ?? context.filename;
    const marker = `${sep}src${sep}`;
    const at = file.lastIndexOf(marker);
    if (at < 0) return {};
    const src = file.slice(0, at + marker.length - 1);
    const from = moduleOf(relative(src, file), modules);
    if (from === null) return {};

    function check(node, specifier) {
      if (typeof specifier !== 'string' || !specifier.startsWith('.')) return;
      if (from.name === undefined) {
        context.report({ node, messageId: 'unmapped', data: { module: from.folder } });
        return;
      }
      const target = resolve(file, '..', specifier);
      const rel = relative(src, target);
      if (rel.startsWith('..')) return;
      const to = moduleOf(rel, modules);
      if (to === null || to.name === from.name) return;
      if (to.name === undefined) {
        context.report({ node, messageId: 'unmapped', data: { module: to.folder } });
        return;
      }
      const allowed = modules[from.name];
      if (!allowed.includes(to.name)) {
        context.report({ node, messageId: 'upward', data: { from: from.name, to: to.name, allowed: allowed.length === 0 ? 'nothing' : allowed.join(', ') } });
        return;
      }
      if (!indexFree.includes(to.name) && !/^index(\.js|\.ts)?$/.test(to.rest)) {
        const index = relative(resolve(file, '..'), resolve(src, to.name, 'index.js')).split(sep).join('/');
        context.report({ node, messageId: 'deep', data: { to: to.name, index: index.startsWith('.') ? index : `./${index}`, file: specifier } });
      }
    }

    return {
      ImportDeclaration: (node) => check(node.source, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
      ExportAllDeclaration: (node) => check(node.source, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node.source, node.source.value),
    };
  },
};

/**
 * The module a path under src/ belongs to: the longest mapped folder prefix (`source/trust`
 * before `source`). `name` is undefined for a folder the map does not list; null for a file
 * directly in src/.
 */
function moduleOf(pathInSrc, modules) {
  const parts = pathInSrc.split(sep);
  if (parts.length < 2) return null;
  for (let n = parts.length - 1; n >= 1; n--) {
    const name = parts.slice(0, n).join('/');
    if (Object.hasOwn(modules, name)) return { name, folder: name, rest: parts.slice(n).join('/') };
  }
  return { name: undefined, folder: parts[0], rest: parts.slice(1).join('/') };
}
