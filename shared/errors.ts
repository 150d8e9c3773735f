/**
 * Every error Tributary reports, by stable code. REST replies, socket acks and CLI
 * messages all carry these codes; docs/errors.md documents each one and a test keeps
 * the two in step.
 */
export const errorCatalog = {
  BAD_REQUEST: { status: 400, message: 'The request does not match its schema' },
  NOT_FOUND: { status: 404, message: 'No such route or page' },
  TASK_NOT_FOUND: { status: 404, message: 'No task with that id' },
  ROUND_NOT_FOUND: { status: 404, message: 'No such round, or it has no checkpoint' },
  TASK_NOT_RUNNING: { status: 409, message: 'The task is not running' },
  TASK_ALREADY_RUNNING: { status: 409, message: 'The task is already running' },
  TASK_FINISHED: { status: 409, message: 'The task has finished all its rounds' },
  UNAUTHORIZED: { status: 401, message: 'Sign in, or present a valid token' },
  LOGIN_FAILED: { status: 401, message: 'Wrong username, password or one-time code' },
  TOTP_REQUIRED: { status: 401, message: 'A one-time code from the authenticator app is required' },
  FORBIDDEN: { status: 403, message: 'Not allowed for this account, or from here' },
  CSRF_INVALID: { status: 403, message: 'Missing or wrong CSRF token' },
  SETUP_TOKEN_INVALID: { status: 403, message: 'Setup token is wrong, or the server already has an admin' },
  ENROLLMENT_TOKEN_INVALID: { status: 403, message: 'Enrollment token is unknown, revoked or expired' },
  NOT_ENROLLED: { status: 403, message: 'This client is not enrolled in that task' },
  USER_EXISTS: { status: 409, message: 'A user with that name exists' },
  USER_NOT_FOUND: { status: 404, message: 'No such user' },
  TOKEN_NOT_FOUND: { status: 404, message: 'No such token' },
  LAST_ADMIN: { status: 409, message: 'The last active admin cannot be demoted or disabled' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; slow down' },
  NOT_JOINED: { status: 403, message: 'Join the task before sending this' },
  SESSION_REPLACED: { status: 409, message: 'Another connection joined with this identity and took the session over' },
  NOT_A_PARTICIPANT: { status: 403, message: 'This client was not selected for the round' },
  ROUND_NOT_ACTIVE: { status: 409, message: 'That round is not collecting updates' },
  ROUND_OUT_OF_ORDER: { status: 409, message: "That round is recorded already, or is not the task's next" },
  UPLOAD_OUT_OF_ORDER: { status: 409, message: 'Chunk index is not the next expected one' },
  UPLOAD_TOO_LARGE: { status: 413, message: 'Upload is larger than this round allows' },
  UPLOAD_DUPLICATE: { status: 409, message: 'An update for this round was already accepted' },
  UPDATE_MALFORMED: { status: 400, message: 'Update payload cannot be decoded' },
  UPDATE_WRONG_LENGTH: { status: 400, message: 'Update does not match the model shape' },
  UPDATE_NOT_FINITE: { status: 400, message: 'Update contains NaN or Infinity' },
  UPDATE_WRONG_BITS: { status: 400, message: 'Update is quantized to other bits than the task' },
  DATA_MALFORMED: { status: 400, message: 'Data file cannot be read' },
  DATA_NOT_FOUND: { status: 404, message: 'Data files not found' },
  DATA_EMPTY: { status: 400, message: 'The data holds no samples' },
  DATA_COLUMNS_MISSING: { status: 400, message: "The table lacks columns the task's schema names" },
  DATA_VALUE_INVALID: { status: 400, message: "A value does not fit its column or label in the task's schema" },
  DATA_WRONG_SHAPE: { status: 400, message: "A sample's size differs from the task's schema" },
  SCHEMA_INVALID: { status: 400, message: 'The data schema contradicts itself' },
  MODEL_MALFORMED: { status: 400, message: 'The model files cannot be read as a TF.js Layers model' },
  MODEL_TOO_LARGE: { status: 413, message: 'The model is larger than the server accepts' },
  MODEL_LAYER_UNSUPPORTED: { status: 400, message: 'The model uses a layer class TF.js does not ship (custom layers are not supported)' },
  MODEL_SHAPE_MISMATCH: { status: 400, message: "The model's input or output shape does not fit the task's data schema" },
  MODEL_WEIGHTS_NOT_FINITE: { status: 400, message: "The model's weights contain NaN or Infinity" },
  KEY_INVALID: { status: 400, message: 'Key is malformed or a low-order point' },
  SERVER_KEY_MISMATCH: { status: 403, message: 'Server key differs from the pinned one' },
  SIGNATURE_INVALID: { status: 400, message: 'Signature does not verify' },
  DECRYPTION_FAILED: { status: 400, message: 'Ciphertext cannot be decrypted' },
  SECAGG_TOO_FEW_SHARES: { status: 409, message: 'Too few shares survive to unmask the sum' },
  SECAGG_RECONSTRUCTION_FAILED: { status: 409, message: 'Revealed shares do not rebuild the secret their owner published' },
  SECAGG_OUT_OF_PHASE: { status: 409, message: 'The secure round is not in the phase this message belongs to' },
  SECAGG_THRESHOLD_UNSAFE: { status: 400, message: 'The secure-aggregation threshold is below the safe bound 2t > k + 1' },
  SECAGG_UNSAFE_VIEW: { status: 409, message: 'What the server showed this client would let it unmask the client alone; refused' },
  AGGREGATION_INVALID: { status: 400, message: 'The aggregation rule cannot run with these settings' },
  PRIVACY_INVALID: { status: 400, message: 'The differential-privacy settings are invalid or cannot be met' },
  PRIVACY_BUDGET_SPENT: { status: 409, message: "Another round would exceed the task's privacy budget" },
  CLUSTER_UNSUPPORTED: { status: 400, message: 'Cluster mode does not run tasks with these settings yet' },
  REDIS_UNAVAILABLE: { status: 503, message: 'Redis, which cluster mode coordinates through, cannot be reached' },
  BACKEND_UNAVAILABLE: { status: 500, message: 'The requested TensorFlow.js backend cannot start here' },
  INTERNAL: { status: 500, message: 'Internal error' },
  DATABASE_UNAVAILABLE: { status: 503, message: 'The database cannot be reached, or refused the connection' },
  SECRETS_KEY_INVALID: { status: 500, message: 'The secrets key is malformed, or does not open the TOTP seeds stored in the database' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

/** The wire form of an error: what REST bodies and socket acks carry. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, detail?: string) {
    const entry = errorCatalog[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message);
    this.name = 'TributaryError';
    this.code = code;
    this.status = entry.status;
  }

  /** An error that arrived over the wire (an ack, a worker thread), its message kept as sent. */
  static fromBody(body: { code: unknown; message: string }): TributaryError {
    const error = new TributaryError(isErrorCode(body.code) ? body.code : 'INTERNAL');
    error.message = body.message;
    return error;
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCatalog, value);
}

/** Any thrown value as a wire error; unknown failures never leak their internals. */
export function toErrorBody(error: unknown): ErrorBody {
  if (error instanceof TributaryError) return error.toBody();
  return { code: 'INTERNAL', message: errorCatalog.INTERNAL.message };
}
