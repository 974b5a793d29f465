// sandbox.js: one sandbox of the daemon and what runs in it: execs, background
// processes, code contexts, files, ports, snapshots (docs/api.md, docs/contexts.md).
import {StreamDecoder, camelize, chunkBytes, ndjsonLines, outputEvents} from './streams.js';
import {checked, errorFromStream} from './errors.js';
import {extractTar, tarOfDir} from './tar.js';

const enc = (s) => encodeURIComponent(s);

function stdinBase64(stdin) {
	if (stdin === undefined || stdin === null)
		return undefined;
	return Buffer.from(typeof stdin === 'string' ? Buffer.from(stdin, 'utf8') : stdin)
		.toString('base64');
}

/** A captured stream of a result: text as sent, or base64 with `<name>_encoding`. */
function capturedText(raw, name) {
	if (raw[name] === undefined)
		return undefined;
	return raw[name + '_encoding'] === 'base64'
		? new TextDecoder().decode(Buffer.from(raw[name], 'base64')) : raw[name];
}

/** The daemon's result camelCased, stdout and stderr as text (bytes that are not UTF-8 as
 * U+FFFD), or the streamed text when the result has none. */
function withText(raw, stdout, stderr) {
	const r = camelize(raw);
	r.stdout = capturedText(raw, 'stdout') ?? stdout ?? '';
	r.stderr = capturedText(raw, 'stderr') ?? stderr ?? '';
	delete r.stdoutEncoding;
	delete r.stderrEncoding;
	return r;
}

/** An exec output object (docs/exit-codes.md#json-output). */
export function execResult(raw, stdout, stderr) {
	const r = withText(raw, stdout, stderr);
	r.cancelled = raw.cancelled ?? false;
	r.limitHit = raw.limit_hit ?? null;
	return r;
}

/** A context run (docs/contexts.md#api), with `text` (the final result's text/plain),
 * `value` (its MIME bundle) and `results` (every bundle: rich outputs). */
export function runResult(raw, stdout, stderr) {
	const r = withText(raw, stdout, stderr);
	r.value = raw.result ?? null;
	r.text = raw.result?.['text/plain'] ?? null;
	r.results = raw.results ?? [];
	r.error = raw.error ?? null;
	return r;
}

/** Drains a stream of output events into callbacks; returns the text of each stream and
 * what its last event (`exit` of an exec or process, `done` of a cell) finished. */
async function drain(events, {onStdout, onStderr, onResult} = {}) {
	const out = [], err = [];
	let end = null;
	for await (const ev of events) {
		const [texts, cb] = ev.type === 'stdout' ? [out, onStdout]
			: ev.type === 'stderr' ? [err, onStderr] : [null, null];
		if (texts) {
			texts.push(ev.text);
			if (cb && ev.text)
				await cb(ev.text, ev.bytes);
		} else if (ev.type === 'result' && onResult) {
			await onResult(ev.result);
		} else if (ev.type === 'exit' || ev.type === 'done') {
			end = ev.exit ?? ev.run;
		}
	}
	return {...end, stdout: out.join(''), stderr: err.join('')};
}

export class Sandbox {
	constructor(client, info) {
		this.client = client;
		this.t = client.transport;
		this.#set(info);
		this.files = new Files(this);
		this.processes = new Processes(this);
		this.contexts = new Contexts(this);
		this.ports = new Ports(this);
		this.defaultContexts = new Map();
	}

	#set(info) {
		this.info = camelize(info);
		this.id = info.id;
		this.name = info.name ?? null;
		this.state = info.state;
		this.base = `/v1/sandboxes/${enc(info.id)}`;
	}

	async json(method, sub, opts) {
		return this.t.json(method, this.base + sub, opts);
	}

	/** Reads the sandbox again (GET /v1/sandboxes/{id}). */
	async refresh() {
		this.#set(await this.json('GET', ''));
		return this;
	}

	/** Destroys it: every process is killed, everything it left removed. One gone
	 * already is no error. */
	async destroy() {
		try {
			await this.json('DELETE', '');
		} catch (e) {
			if (e.status !== 404)
				throw e;
		}
		this.state = 'destroyed';
	}

	async suspend() {
		this.#set(await this.json('POST', '/suspend'));
		return this;
	}

	async resume() {
		this.#set(await this.json('POST', '/resume'));
		return this;
	}

	/** Its ttl, idle timeout and what they do (`destroy` or `suspend`). */
	async setTimeout({ttlMs, idleTimeoutMs, onExpire} = {}) {
		this.#set(await this.json('POST', '/timeout', {json: {
			ttl_ms: ttlMs, idle_timeout_ms: idleTimeoutMs, on_expire: onExpire}}));
		return this;
	}

	/** Switches its network live: `none`, or `allowlist` with its entries. */
	async setNetwork(mode, allow) {
		this.#set(await this.json('PATCH', '/network', {json: {mode, allow}}));
		return this;
	}

	async usage() {
		return camelize(await this.json('GET', '/usage'));
	}

	#execBody(cmd, o, stream) {
		const argv = typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : cmd;
		return {argv, env: o.env, workdir: o.workdir, stdin: stdinBase64(o.stdin),
			timeout_ms: o.timeoutMs, stream: stream || undefined};
	}

	/** Runs a command (an argv array, or a string: a /bin/sh -c line) to its end. With onStdout/onStderr the output streams to them
	 * as it comes (whole UTF-8 characters); aborting `signal` kills the command. Resolves
	 * with the exec output whatever the exit code. */
	async exec(argv, opts = {}) {
		let r;
		if (!opts.onStdout && !opts.onStderr)
			r = execResult(await this.json('POST', '/exec',
				{json: this.#execBody(argv, opts, false), signal: opts.signal}));
		else
			r = await drain(this.execStream(argv, opts), opts);
		return opts.check ? checked(r) : r;
	}

	/** Runs argv, its output as an async iterator of events: `{type: "stdout"|"stderr",
	 * text, bytes}`, last `{type: "exit", exit}`. Leaving the loop early kills it. */
	async *execStream(argv, opts = {}) {
		const res = await this.t.open('POST', this.base + '/exec',
			{json: this.#execBody(argv, opts, true), signal: opts.signal});
		yield* outputEvents(res, (raw) => execResult(raw));
	}

	/** Runs code in this sandbox's context of `language`, made on first use and kept. */
	async runCode(code, {language = 'python', ...opts} = {}) {
		let ctx = this.defaultContexts.get(language);
		if (!ctx || (await ctx.refresh()).state === 'gone') {
			ctx = await this.contexts.create(language);
			this.defaultContexts.set(language, ctx);
		}
		return ctx.run(code, opts);
	}

	// snapshots -----------------------------------------------------------------------

	async snapshot({name} = {}) {
		return camelize(await this.json('POST', '/snapshots', {json: {name}}));
	}

	async snapshots() {
		return camelize((await this.json('GET', '/snapshots')).snapshots);
	}

	/** A new sandbox that starts from a snapshot of this one taken now (create's options
	 * apply; its policy defaults to this one's). */
	async fork({snapshotName, copy, ...create} = {}) {
		const snap = await this.snapshot({name: snapshotName});
		return this.client.create({policy: this.info.spec, ...create, fromSnapshot: snap.id,
			fromSnapshotCopy: copy});
	}

	/** Puts its workdir and /tmp back as the snapshot (an id or a name) had them. */
	async restore(snapshot) {
		return camelize(await this.json('POST', '/restore',
			{json: {snapshot_id: snapshot?.id ?? snapshot}}));
	}

	async deleteSnapshot(snapshot) {
		await this.json('DELETE', `/snapshots/${enc(snapshot?.id ?? snapshot)}`);
	}
}

export class Process {
	constructor(sandbox, info) {
		this.sandbox = sandbox;
		this.pid = info.pid;
		this.base = `${sandbox.base}/processes/${info.pid}`;
		this.info = camelize(info);
	}

	get state() {
		return this.info.state;
	}

	get exitCode() {
		return this.info.exitCode;
	}

	async refresh() {
		this.info = camelize(await this.sandbox.t.json('GET', this.base));
		return this;
	}

	/** Sends a signal (`TERM`, `SIGINT`, 9...) to its main process. */
	async signal(sig) {
		this.info = camelize(await this.sandbox.t.json('POST', this.base + '/signal',
			{json: {signal: sig}}));
		return this;
	}

	/** Kills its whole tree, waits for its end and forgets it. */
	async kill() {
		this.info = camelize(await this.sandbox.t.json('DELETE', this.base));
		return this;
	}

	/** Writes to its stdin (started with `stdin: true` or `tty: true`); `close` sends EOF. */
	async writeStdin(data, {close} = {}) {
		const body = typeof data === 'string' ? {data}
			: {data: Buffer.from(data).toString('base64'), encoding: 'base64'};
		return (await this.sandbox.t.json('POST', this.base + '/stdin',
			{json: {...body, close: close || undefined}})).written;
	}

	async closeStdin() {
		await this.sandbox.t.json('POST', this.base + '/stdin', {json: {close: true}});
	}

	/** Its output as events (see Sandbox.execStream, with each chunk's `offset`); with
	 * `follow` until it ends. */
	async *output({offset, follow, stream, signal} = {}) {
		const res = await this.sandbox.t.open('GET', this.base + '/output',
			{query: {offset, follow: follow ? 1 : undefined, stream}, signal});
		yield* outputEvents(res, (raw) => {
			this.info = camelize(raw);
			return this.info;
		});
	}

	/** What its ring keeps of one stream now, as text. */
	async readOutput(stream = 'stdout') {
		const texts = [];
		for await (const ev of this.output({stream}))
			if (ev.type === stream)
				texts.push(ev.text);
		return texts.join('');
	}

	/** Follows its output into callbacks until it ends; resolves with the ended process. */
	async wait({onStdout, onStderr, signal} = {}) {
		return drain(this.output({follow: true, signal}), {onStdout, onStderr});
	}
}

export class Processes {
	constructor(sandbox) {
		this.sandbox = sandbox;
	}

	/** Starts a command in the background (container backend); answers at once. */
	async start(cmd, {env, workdir, tty, rows, cols, stdin} = {}) {
		const argv = typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : cmd;
		return new Process(this.sandbox, await this.sandbox.json('POST', '/processes',
			{json: {argv, env, workdir, tty, rows, cols, stdin}}));
	}

	async list() {
		const r = await this.sandbox.json('GET', '/processes');
		return r.processes.map((p) => new Process(this.sandbox, p));
	}

	async get(pid) {
		return new Process(this.sandbox, await this.sandbox.json('GET', `/processes/${pid}`));
	}
}

export class Contexts {
	constructor(sandbox) {
		this.sandbox = sandbox;
	}

	/** Starts an interpreter (`python`, `node`, `sh`, `bash`) that keeps its state. */
	async create(language = 'python', {env, workdir} = {}) {
		return new Context(this.sandbox, await this.sandbox.json('POST', '/contexts',
			{json: {language, env, workdir}}));
	}

	async list() {
		const r = await this.sandbox.json('GET', '/contexts');
		return r.contexts.map((c) => new Context(this.sandbox, c));
	}

	async get(cid) {
		return new Context(this.sandbox, await this.sandbox.json('GET', `/contexts/${cid}`));
	}
}

export class Ports {
	constructor(sandbox) {
		this.sandbox = sandbox;
	}

	/** Forwards the sandbox's TCP port to the host's 127.0.0.1 (or a unix socket). */
	async open(port, {unix} = {}) {
		return camelize(await this.sandbox.json('POST', '/ports', {json: {port, unix}}));
	}

	async list() {
		return camelize((await this.sandbox.json('GET', '/ports')).ports);
	}

	async close(port) {
		await this.sandbox.json('DELETE', `/ports/${port}`);
	}
}

export class Context {
	constructor(sandbox, info) {
		this.sandbox = sandbox;
		this.id = info.id;
		this.language = info.language;
		this.state = info.state;
		this.base = `${sandbox.base}/contexts/${info.id}`;
		this.info = camelize(info);
	}

	async refresh() {
		const info = await this.sandbox.t.json('GET', this.base);
		this.info = camelize(info);
		this.state = info.state;
		return this;
	}

	async delete() {
		await this.sandbox.t.json('DELETE', this.base);
		this.state = 'gone';
	}

	/** Runs a cell; the interpreter keeps its state for the next. onStdout/onStderr/
	 * onResult stream as the cell runs; aborting `signal` interrupts it. */
	async run(code, {timeoutMs, env, onStdout, onStderr, onResult, signal, check} = {}) {
		let r;
		if (!onStdout && !onStderr && !onResult)
			r = runResult(await this.sandbox.t.json('POST', this.base + '/run',
				{json: {code, timeout_ms: timeoutMs, env}, signal}));
		else
			r = await drain(this.runStream(code, {timeoutMs, env, signal}),
				{onStdout, onStderr, onResult});
		return check ? checked(r) : r;
	}

	/** A cell's events: `{type: "stdout"|"stderr", text, bytes}`, `{type: "result",
	 * result}` (a MIME bundle), `{type: "error", error}`, last `{type: "done", run}`. */
	async *runStream(code, {timeoutMs, env, signal} = {}) {
		const res = await this.sandbox.t.open('POST', this.base + '/run',
			{json: {code, timeout_ms: timeoutMs, env, stream: true}, signal});
		const dec = new StreamDecoder();
		for await (const line of ndjsonLines(res)) {
			if (line.stream) {
				const bytes = chunkBytes(line);
				yield {type: line.stream, text: dec.push(line.stream, bytes), bytes};
			} else if (line.result) {
				yield {type: 'result', result: line.result};
			} else if (line.done) {
				for (const [stream, text] of dec.flush())
					yield {type: stream, text, bytes: new Uint8Array(0)};
				this.state = line.done.context_alive ? 'ready' : 'gone';
				yield {type: 'done', run: runResult(line.done)};
			} else if (line.error && line.error.code !== undefined && !line.error.name) {
				throw errorFromStream(line.error);
			} else if (line.error) {
				yield {type: 'error', error: line.error};
			}
		}
	}
}

export class Files {
	constructor(sandbox) {
		this.sandbox = sandbox;
		this.t = sandbox.t;
		this.base = sandbox.base + '/files';
	}

	/** A file's bytes. */
	async read(path, {signal} = {}) {
		return (await this.t.request('GET', this.base, {query: {path}, signal})).body;
	}

	/** A file's text (UTF-8). */
	async readText(path, opts) {
		return new TextDecoder().decode(await this.read(path, opts));
	}

	/** Creates or truncates a file; `parents` makes the missing directories first. */
	async write(path, data, {parents} = {}) {
		return camelize(await this.t.json('PUT', this.base, {
			query: {path, parents}, body: typeof data === 'string' ? Buffer.from(data) : data,
			headers: {'content-type': 'application/octet-stream'}}));
	}

	/** A directory's entries (stat objects), `{path, entries, truncated}`. */
	async list(path = '.') {
		return camelize(await this.t.json('GET', this.base + '/list', {query: {path}}));
	}

	async stat(path) {
		return camelize(await this.t.json('GET', this.base + '/stat', {query: {path}}));
	}

	async exists(path) {
		try {
			await this.stat(path);
			return true;
		} catch (e) {
			if (e.status === 404)
				return false;
			throw e;
		}
	}

	async mkdir(path, {parents} = {}) {
		return camelize(await this.t.json('POST', this.base + '/mkdir',
			{json: {path, parents}}));
	}

	/** Removes a file, a symlink or an empty directory; `recursive` a tree. */
	async remove(path, {recursive} = {}) {
		return camelize(await this.t.json('DELETE', this.base, {query: {path, recursive}}));
	}

	async rename(from, to, {noreplace} = {}) {
		return camelize(await this.t.json('POST', this.base + '/rename',
			{json: {from, to, noreplace}}));
	}

	/** Permission bits only: `"755"` or 0o755. */
	async chmod(path, mode) {
		return camelize(await this.t.json('POST', this.base + '/chmod', {json: {path, mode}}));
	}

	/** Unpacks a tar archive (bytes, or a readable stream) into directory `dir`. */
	async uploadTar(dir, tar) {
		return camelize(await this.t.json('PUT', this.base + '/tar', {
			query: {path: dir}, body: tar, headers: {'content-type': 'application/x-tar'}}));
	}

	/** Uploads a local directory's contents into `remoteDir` (one tar, checked whole by
	 * the daemon before anything is written). */
	async uploadDir(localDir, remoteDir) {
		return this.uploadTar(remoteDir, tarOfDir(localDir));
	}

	/** Downloads `remoteDir` into a local directory; the paths written. What the sandbox
	 * put there is not trusted: no name out of `localDir`, nothing written through a
	 * symlink, no link pointing out of it. */
	async downloadDir(remoteDir, localDir) {
		return extractTar(Buffer.from(await this.downloadTar(remoteDir)), localDir);
	}

	/** Directory `dir` as a tar archive (bytes). */
	async downloadTar(dir, {signal} = {}) {
		return (await this.t.request('GET', this.base + '/tar', {query: {path: dir}, signal}))
			.body;
	}

	/** Directory `dir` as a tar stream (a node Readable, read as it comes). */
	async downloadTarStream(dir, {signal} = {}) {
		return this.t.open('GET', this.base + '/tar', {query: {path: dir}, signal});
	}

	/** Changes beneath `dir`, recursive: `{event: "watching"|"create"|"modify"|"delete"|
	 * "move"|"overflow"|"end", path?, type?, ...}` until the loop is left, `signal` aborts
	 * or the sandbox goes. */
	async *watch(dir = '.', {signal} = {}) {
		const res = await this.t.open('GET', this.base + '/watch', {query: {path: dir}, signal});
		for await (const line of ndjsonLines(res)) {
			if (line.error)
				throw errorFromStream(line.error);
			yield line;
		}
	}
}
