// errors.js: what the daemon answers as an error, as Error subclasses carrying the HTTP
// status, the daemon's code and message, and the limit that was hit (docs/api.md#errors).

/** The limit a 413/429/507 names: a policy key (`limits.max_snapshot_bytes`) or a daemon
 * flag (`--max-sandboxes`), as the daemon's message states it; else null. */
function limitOf(status, message) {
	if (status !== 413 && status !== 429 && status !== 507)
		return null;
	const m = /--max-[a-z-]+|\blimits\.[a-z_]+|\bmax_[a-z_]+/.exec(message);
	if (m)
		return m[0];
	if (/\bover the limit of\b|\blarger than\b/.test(message))
		return '--max-file-size';
	return null;
}

export class AgentdError extends Error {
	/**
	 * @param {number} status HTTP status (0: no answer, the connection failed)
	 * @param {string} code the daemon's error code (`not_found`, `conflict`, ...)
	 * @param {string} message the daemon's message
	 * @param {object} [body] the whole error object
	 */
	constructor(status, code, message, body) {
		super(message);
		this.name = new.target.name;
		this.status = status;
		this.code = code;
		this.limit = limitOf(status, message);
		this.body = body ?? null;
	}
}

export class BadRequestError extends AgentdError {}
export class UnauthorizedError extends AgentdError {}
export class NotFoundError extends AgentdError {}
export class ConflictError extends AgentdError {}
/** A bound was hit: 413, 429, 507 (`limit` names it). */
export class LimitExceededError extends AgentdError {}
export class TooLargeError extends LimitExceededError {}
export class OverCapacityError extends LimitExceededError {}
export class NotSupportedError extends AgentdError {}
export class UnavailableError extends AgentdError {}
export class InsufficientStorageError extends LimitExceededError {}
/** 408; a command or cell that timed out (`check: true`). */
export class TimeoutError extends AgentdError {}
/** A command that exited non-zero, or a cell that did not end ok (`check: true`);
 * `result` is its result. */
export class CommandFailedError extends AgentdError {}
/** The daemon could not be reached, or the connection broke before an answer. */
export class ConnectionError extends AgentdError {}

const BY_STATUS = {
	400: BadRequestError, 401: UnauthorizedError, 404: NotFoundError, 405: BadRequestError,
	408: TimeoutError,
	409: ConflictError, 413: TooLargeError, 415: BadRequestError, 429: OverCapacityError,
	501: NotSupportedError, 503: UnavailableError, 507: InsufficientStorageError,
};
const STATUS_OF_CODE = {
	bad_request: 400, unauthorized: 401, request_timeout: 408, not_found: 404,
	method_not_allowed: 405, conflict: 409, too_large: 413, unsupported_media_type: 415,
	over_capacity: 429, internal: 500, not_supported: 501, unavailable: 503,
	insufficient_storage: 507,
};

/** The error for an answer of status `status` whose body is `body` (bytes or parsed). */
export function errorFromResponse(status, body) {
	let obj = body;
	if (body instanceof Uint8Array) {
		try {
			obj = JSON.parse(new TextDecoder().decode(body));
		} catch {
			obj = null;
		}
	}
	const e = obj && typeof obj === 'object' && obj.error && typeof obj.error === 'object'
		? obj.error : null;
	const code = e && typeof e.code === 'string' ? e.code : 'internal';
	const message = e && typeof e.message === 'string' ? e.message
		: `HTTP ${status}` + (body instanceof Uint8Array && body.length
			? `: ${new TextDecoder().decode(body.subarray(0, 200))}` : '');
	const Cls = BY_STATUS[status] ?? AgentdError;
	return new Cls(status, code, message, e);
}

/** The error a stream's last line `{"error": {"code", "message"}}` reports. */
export function errorFromStream(e) {
	const status = STATUS_OF_CODE[e?.code] ?? 500;
	return errorFromResponse(status, {error: e});
}

/** `result` itself, or the error its end is (`check: true`): TimeoutError (timed out),
 * LimitExceededError (a limit killed or cut it: `limit` is `memory`, `cpu`, `pids`,
 * `write`, `output`), CommandFailedError (another non-zero exit, a cell not ok). */
export function checked(result) {
	let e = null;
	const cell = result.status !== undefined;
	if (result.timedOut)
		e = new TimeoutError(0, 'timeout', `timed out after ${result.durationMs} ms` +
			(cell ? '' : ` (exit ${result.exitCode})`));
	else if (result.limitHit)
		e = new LimitExceededError(0, 'limit', `limit hit: ${result.limitHit} (exit ` +
			`${result.exitCode})`);
	else if (cell ? result.status !== 'ok' : result.exitCode !== 0)
		e = new CommandFailedError(0, 'failed', cell
			? `cell ${result.status}: ${result.error?.name ?? ''}: ${result.error?.value ?? ''}`
			: `exit ${result.exitCode}: ${result.stderr.slice(-500)}`);
	if (!e)
		return result;
	e.limit = result.limitHit ?? null;
	e.result = result;
	throw e;
}
