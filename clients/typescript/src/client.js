// client.js: the daemon as a whole: sandboxes, snapshots, sessions, audit, health.
import {Transport} from './transport.js';
import {Sandbox} from './sandbox.js';
import {Policy} from './policy.js';
import {camelize} from './streams.js';

const enc = (s) => encodeURIComponent(s);

export class Client {
	/**
	 * @param {{socketPath?: string, url?: string, token?: string}} [opts] the unix socket
	 *   (default: as `agentd` finds it), or `url: "http://127.0.0.1:PORT"` with `token`
	 */
	constructor(opts = {}) {
		this.transport = new Transport(opts);
	}

	/** Closes the kept-alive connections (the process may then exit). */
	close() {
		this.transport.close();
	}

	async health() {
		return camelize(await this.transport.json('GET', '/v1/health'));
	}

	/** Prometheus text. */
	async metrics() {
		return new TextDecoder().decode((await this.transport.request('GET', '/v1/metrics')).body);
	}

	async backends() {
		return camelize((await this.transport.json('GET', '/v1/backends')).backends);
	}

	async backend(name) {
		return camelize(await this.transport.json('GET', `/v1/backends/${enc(name)}`));
	}

	/** Creates a sandbox. `policy` is a Policy or its JSON object (absent: `strict`). */
	async create({policy, backend, name, allowDegraded, ttlMs, idleTimeoutMs, onExpire,
			     fromSnapshot, fromSnapshotCopy} = {}) {
		const spec = policy instanceof Policy ? policy.toJSON() : policy;
		const info = await this.transport.json('POST', '/v1/sandboxes', {json: {
			backend, spec, name, allow_degraded: allowDegraded, ttl_ms: ttlMs,
			idle_timeout_ms: idleTimeoutMs, on_expire: onExpire, from_snapshot: fromSnapshot,
			from_snapshot_copy: fromSnapshotCopy}});
		return new Sandbox(this, info);
	}

	/** A sandbox by id or name (a gone one: its stored row, `state` destroyed/failed). */
	async get(idOrName) {
		return new Sandbox(this, await this.transport.json('GET', `/v1/sandboxes/${enc(idOrName)}`));
	}

	/** The live sandboxes matching every filter given. */
	async list({labels, state, backend, name} = {}) {
		const label = labels ? Object.entries(labels).map(([k, v]) => `${k}=${v}`) : undefined;
		const r = await this.transport.json('GET', '/v1/sandboxes',
			{query: {label, state, backend, name}});
		return r.sandboxes.map((s) => new Sandbox(this, s));
	}

	/** Every snapshot the daemon keeps. */
	async snapshots() {
		return camelize((await this.transport.json('GET', '/v1/snapshots')).snapshots);
	}

	async snapshot(snapshot) {
		return camelize(await this.transport.json('GET', `/v1/snapshots/${enc(snapshot)}`));
	}

	async deleteSnapshot(snapshot) {
		await this.transport.json('DELETE', `/v1/snapshots/${enc(snapshot?.id ?? snapshot)}`);
	}

	/** Audit records after a seq (a number) or from a time (`YYYY-MM-DDTHH:MM:SSZ`, a Date). */
	async audit({since} = {}) {
		if (since instanceof Date)
			since = since.toISOString().replace(/\.\d+Z$/, 'Z');
		return camelize((await this.transport.json('GET', '/v1/audit', {query: {since}})).records);
	}

	async auditVerify() {
		return camelize(await this.transport.json('GET', '/v1/audit/verify'));
	}

	/** An agent's session: a sandbox of its own whose executions keep their state. */
	async session(agent, policy, {backend, allowDegraded} = {}) {
		const spec = policy instanceof Policy ? policy.toJSON() : policy;
		const info = await this.transport.json('POST', `/v1/agents/${enc(agent)}/sessions`,
			{json: {config: spec, backend, allow_degraded: allowDegraded}});
		return new Session(this, info);
	}
}

export class Session {
	constructor(client, info) {
		this.client = client;
		this.agentId = info.agent_id;
		this.id = info.session_id;
		this.sandboxId = info.sandbox_id;
		this.info = camelize(info);
		this.base = `/v1/agents/${enc(this.agentId)}/sessions/${this.id}`;
	}

	/** Runs code in the session's context of `language` (python by default). */
	async execute(code, {language, timeoutMs, env} = {}) {
		return camelize(await this.client.transport.json('POST', this.base + '/executions',
			{json: {code, language, timeout_ms: timeoutMs, env}}));
	}

	async executions() {
		return camelize((await this.client.transport.json('GET', this.base + '/executions'))
			.executions);
	}

	async destroy() {
		await this.client.transport.json('DELETE', this.base);
	}
}
