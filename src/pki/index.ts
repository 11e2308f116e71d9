export {
  createCa,
  EnrollmentCa,
  generateRsaKeyPair,
  randomSerialHex,
  CLOCK_SKEW_MS,
  DEFAULT_AGENT_CERT_TTL_MS,
  DEFAULT_CA_VALIDITY_MS,
  DEFAULT_SERVER_CERT_TTL_MS,
} from './ca.js';
export type {
  AgentCertificateRequest,
  CaMaterial,
  CreateCaOptions,
  EnrollmentCaOptions,
  IssuedCertificate,
  RsaKeyPair,
  ServerCertificateRequest,
} from './ca.js';
export {
  agentIdFromCertificate,
  agentSpiffeId,
  certificateExpiry,
  parseServerNames,
  parseSubjectAltName,
  serverNamesOfCertificate,
} from './identity.js';
export type { CertificateInput, GeneralName, ServerName } from './identity.js';
export { matchesAnyPin, parsePin, spkiPin } from './pin.js';
export type { Pin } from './pin.js';
export { EnrollmentTokens, ENROLLMENT_TOKEN_PREFIX, hashToken } from './tokens.js';
export type { CreatedToken, EnrollmentTokensOptions, TokenRecord, TokenStore } from './tokens.js';
export { dataDirPaths, openDataDir, readServerPin } from './data-dir.js';
export type { DataDir, DataDirChange, DataDirOptions, DataDirPaths } from './data-dir.js';
export { readSecretFile, SECRET_FILE_MODE } from './secret-file.js';
