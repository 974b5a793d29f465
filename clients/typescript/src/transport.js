// transport.js: HTTP/1.1 to `agentd serve` with node:http alone: over the unix socket
// (found as the CLI finds it: src/common/paths.c) or over TCP with a bearer token, on
// kept-alive connections.
import http from 'node:http';
import path from 'node:path';
import {AgentdError, ConnectionError, errorFromResponse} from './errors.js';

/** The daemon's socket as `agentd` finds it: $AGENTD_SOCKET, else /run/agentd/agentd.sock
 * as root, else $XDG_RUNTIME_DIR/agentd.sock (/tmp/agentd.sock without it). */
export function defaultSocketPath(env = process.env) {
	if (env.AGENTD_SOCKET)
		return env.AGENTD_SOCKET;
	if (typeof process.geteuid === 'function' && process.geteuid() === 0)
		return '/run/agentd/agentd.sock';
	return path.join(env.XDG_RUNTIME_DIR || '/tmp', 'agentd.sock');
}

function queryString(query) {
	if (!query)
		return '';
	const qs = new URLSearchParams();
	for (const [k, v] of Object.entries(query)) {
		if (v === undefined || v === null || v === false)
			continue;
		for (const one of Array.isArray(v) ? v : [v])
			qs.append(k, v === true ? '1' : String(one));
	}
	const s = qs.toString();
	return s ? '?' + s : '';
}

const EXPECT_FROM = 64 * 1024;

/** The AbortError of an aborted signal (what node:http rejects with before the answer). */
function abortError(signal) {
	const e = new DOMException('This operation was aborted', 'AbortError');
	e.cause = signal.reason;
	return e;
}

/** Reads the rest of a response; an abort of its signal rejects as an AbortError. */
export async function readAll(res) {
	const parts = [];
	try {
		for await (const c of res)
			parts.push(c);
	} catch (e) {
		throw res.abortSignal?.aborted ? abortError(res.abortSignal) : e;
	}
	return new Uint8Array(Buffer.concat(parts));
}

/** The aborted signal's AbortError instead of the broken response's, else e. */
export function asAbort(res, e) {
	return res.abortSignal?.aborted ? abortError(res.abortSignal) : e;
}

const RETRYABLE = new Set(['ECONNRESET', 'EPIPE']);

export class Transport {
	/**
	 * @param {{socketPath?: string, url?: string, token?: string}} [opts]
	 */
	constructor(opts = {}) {
		if (opts.url) {
			const u = new URL(opts.url);
			if (u.protocol !== 'http:')
				throw new TypeError(`url: only http:// is spoken (got ${u.protocol})`);
			this.host = u.hostname;
			this.port = Number(u.port || 80);
			this.where = `${u.hostname}:${this.port}`;
			this.socketPath = null;
		} else {
			this.socketPath = opts.socketPath || defaultSocketPath();
			this.where = this.socketPath;
		}
		this.token = opts.token ?? null;
		this.agent = new http.Agent({keepAlive: true, maxSockets: 64});
	}

	close() {
		this.agent.destroy();
	}

	/** Sends one request; resolves with the response once its head arrived. A status >= 400
	 * rejects with the daemon's error (its body read). `body` is bytes, a string, or a
	 * readable stream (sent chunked, never retried). */
	async open(method, route, {query, json, body, headers = {}, signal} = {}) {
		const h = {...headers};
		if (json !== undefined) {
			body = JSON.stringify(json);
			h['content-type'] = 'application/json';
		}
		if (this.token)
			h.authorization = `Bearer ${this.token}`;
		if (typeof body === 'string')
			body = Buffer.from(body);
		if (body instanceof Uint8Array)
			h['content-length'] = String(body.length);
		else if (body === undefined && method !== 'GET' && method !== 'DELETE')
			h['content-length'] = '0';
		const replayable = body === undefined || body instanceof Uint8Array;
		// A large or streamed body waits for the daemon's 100 Continue: a refusal (413
		// past --max-file-size, 404) comes before any of it is sent, not as a broken pipe.
		if (body !== undefined && !(body instanceof Uint8Array && body.length < EXPECT_FROM))
			h.expect = '100-continue';
		const reqOpts = {
			method, path: route + queryString(query), headers: h, agent: this.agent,
			signal,
			...(this.socketPath ? {socketPath: this.socketPath} : {host: this.host, port: this.port}),
		};
		for (let attempt = 0; ; attempt++) {
			try {
				return await this.#once(reqOpts, body);
			} catch (e) {
				// a kept-alive connection the daemon closed meanwhile (after an early error
				// answer, or idle): the request never reached it; send it again once
				if (attempt === 0 && replayable && e.reusedSocket && RETRYABLE.has(e.code))
					continue;
				throw this.#wrap(e, method, route);
			}
		}
	}

	#once(reqOpts, body) {
		return new Promise((resolve, reject) => {
			const req = http.request(reqOpts, (res) => {
				if (res.statusCode >= 400) {
					readAll(res).then((b) => {
						// refused before its body went: the connection cannot be reused
						if (reqOpts.headers.expect && !req.bodySent)
							req.destroy();
						reject(errorFromResponse(res.statusCode, b));
					}, reject);
					return;
				}
				res.abortSignal = reqOpts.signal;
				resolve(res);
			});
			req.on('error', (e) => {
				e.reusedSocket = req.reusedSocket;
				reject(e);
			});
			if (reqOpts.headers.expect) {
				// the daemon answers 100 Continue, or its refusal; some servers neither
				let sent = false;
				const send = () => {
					if (!sent) {
						sent = req.bodySent = true;
						clearTimeout(timer);
						this.#send(req, body);
					}
				};
				const timer = setTimeout(send, 2000);
				req.on('continue', send);
				req.on('response', () => clearTimeout(timer));
				req.on('error', () => clearTimeout(timer));
				req.flushHeaders();
			} else {
				this.#send(req, body);
			}
		});
	}

	#send(req, body) {
		if (body && typeof body.pipe === 'function')
			body.pipe(req);
		else if (body && typeof body[Symbol.asyncIterator] === 'function' &&
			 !(body instanceof Uint8Array))
			(async () => {
				try {
					for await (const c of body)
						if (!req.write(c))
							await new Promise((r) => req.once('drain', r));
					req.end();
				} catch (e) {
					req.destroy(e);
				}
			})();
		else
			req.end(body);
	}

	#wrap(e, method, route) {
		if (e instanceof AgentdError || e?.name === 'AbortError')
			return e;
		const hint = this.socketPath
			? ' (is `agentd serve` running? pass socketPath or set $AGENTD_SOCKET)' : '';
		const err = new ConnectionError(0, 'connection', `${method} ${route}: agentd at ` +
			`${this.where}: ${e.message}${hint}`);
		err.cause = e;
		return err;
	}

	/** A whole answer: `{status, headers, body}` with body as bytes. */
	async request(method, route, opts) {
		const res = await this.open(method, route, opts);
		const body = await readAll(res).catch((e) => {
			throw this.#wrap(e, method, route);
		});
		return {status: res.statusCode, headers: res.headers, body};
	}

	/** A JSON answer, parsed. */
	async json(method, route, opts) {
		const r = await this.request(method, route, opts);
		return JSON.parse(new TextDecoder().decode(r.body));
	}
}
