export { GitSource } from './git-source.js';
export type {
  FetchEvent,
  FetchResult,
  GitSourceOptions,
  PollOptions,
  SourceHead,
  SourceHooks,
  SourceStatus,
} from './git-source.js';
export { parseRepositoryLocation, redactUrl } from './location.js';
export type { RepositoryLocation } from './location.js';
export { ConfigTreeReader, DEFAULT_TREE_LIMITS, describeSkipped } from './tree.js';
export type { GitObjectReader, GitTreeEntry, TreeCacheStats, TreeLimits, TreeReaderOptions } from './tree.js';
