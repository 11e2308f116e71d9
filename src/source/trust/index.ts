/**
 * The trust gate: the only producer of VerifiedCommit. Nothing here reads a tree.
 * (verified-commit.ts, the one place that brands a VerifiedCommit, is deliberately not exported.)
 */
export { TrustGate, skipVerification } from './gate.js';
export type { CommitReader, KeyValidityTime, TrustGateOptions, VerifyOptions } from './gate.js';
export type { DetachedSignature, SignatureKind, SignatureVerifier, SignerIdentity } from './verifier.js';
export { SshSignatureVerifier } from './ssh-verifier.js';
export type { SshVerifierOptions } from './ssh-verifier.js';
export { authorizeKey, loadAllowedSigners, parseAllowedSigners } from './allowed-signers.js';
export type { AllowedSigner, AllowedSigners, SignerDecision } from './allowed-signers.js';
export { parseSshSignature, verifySshSignature } from './sshsig.js';
export type { SshSignature, SshSignatureAlgorithm } from './sshsig.js';
export { sshFingerprint } from './ssh-key.js';
export type { SshKeyType, SshPublicKey } from './ssh-key.js';
export { commitObjectId, parseCommitFields, signatureKind, splitCommitSignature } from './commit-object.js';
export type { CommitFields, ObjectFormat, SplitCommit } from './commit-object.js';
