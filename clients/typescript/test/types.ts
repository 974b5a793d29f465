// Type-checked only (tsc --noEmit, `npm run typecheck`): every call of the SDK as a
// TypeScript user writes it, against the hand-written src/index.d.ts.
import {
	Client, Policy, Sandbox, Process, Context, Files, Session, AgentdError, NotFoundError,
	ConnectionError, defaultSocketPath, type ExecResult, type RunResult, type OutputEvent,
	type WatchEvent, type MimeBundle,
} from '../src/index.js';

export async function everyCall(): Promise<void> {
	const client = new Client({socketPath: defaultSocketPath()});
	const tcp = new Client({url: 'http://127.0.0.1:8080', token: 'x'.repeat(16)});
	tcp.close();
	const h = await client.health();
	const status: 'ok' | 'draining' = h.status;
	await client.metrics();
	await client.backends();
	await client.backend('container');
	const policy = Policy.standard().memory(256 << 20).cpuTime(1000).wallTime(5000)
		.processes(32).openFiles(64).outputBytes(1 << 20).writeBytes(1 << 20)
		.snapshotBytes(0).processOutputBytes(4096).cpuWeight(100).cpuQuotaPct(100)
		.allow('pypi.org:443').network('none').env('A', 'b').environment({C: 'd'})
		.label('k', 'v').labels({x: 'y'}).readOnly('/opt').readWrite('/srv')
		.bindMount('/a', '/b', {readonly: false}).seccomp('default').runAs(1000, 1000)
		.workdir('/workspace').profile('strict').limit('max_processes', 8);
	const sb: Sandbox = await client.create({policy, name: 'n', ttlMs: 1000,
		idleTimeoutMs: 1000, onExpire: 'suspend', allowDegraded: false, backend: 'container'});
	await client.create({policy: Policy.from({profile: 'strict'}).toJSON()});
	await client.get('n');
	const list: Sandbox[] = await client.list({labels: {k: 'v'}, state: 'ready'});
	void list;
	const r: ExecResult = await sb.exec(['ls'], {env: {A: 'b'}, workdir: '/tmp', stdin: 'x',
		timeoutMs: 100, signal: AbortSignal.timeout(1000), check: true,
		onStdout: (text: string, bytes: Uint8Array) => { void text; void bytes; },
		onStderr: async () => {}});
	const code: number = r.exitCode;
	const limit: string | null = r.limitHit;
	void code; void limit; void status;
	for await (const ev of sb.execStream(['ls'])) {
		const e: OutputEvent<ExecResult> = ev;
		if (e.type === 'exit')
			e.exit.exitCode.toFixed();
		else if (e.type === 'stdout' || e.type === 'stderr')
			e.text.toUpperCase();
	}
	const p: Process = await sb.processes.start(['sleep', '1'], {stdin: true, tty: false});
	await p.writeStdin('x');
	(await p.writeStdin(new Uint8Array([1]), {close: true})).toFixed();
	await p.readOutput('stderr');
	await p.closeStdin();
	await p.signal('TERM');
	await p.refresh();
	for await (const ev of p.output({follow: true, offset: 0, stream: 'both'}))
		void ev;
	const ended = await p.wait({onStdout: () => {}});
	ended.stdout.trim();
	await p.kill();
	await sb.processes.list();
	await sb.processes.get(p.pid);
	const ctx: Context = await sb.contexts.create('python', {env: {}, workdir: '/tmp'});
	const run: RunResult = await ctx.run('1+1', {timeoutMs: 100,
		onResult: (b: MimeBundle) => { void b['text/plain']; }});
	const text: string | null = run.text;
	void text;
	run.results.map((b) => b['image/png']);
	run.error?.traceback.trim();
	for await (const ev of ctx.runStream('1'))
		if (ev.type === 'done')
			ev.run.status.trim();
	await ctx.refresh();
	await ctx.delete();
	await sb.contexts.list();
	await sb.contexts.get(ctx.id);
	await sb.runCode('1', {language: 'node'});
	const files: Files = sb.files;
	await files.write('a', 'b', {parents: true});
	(await files.read('a')).byteLength.toFixed();
	await files.readText('a');
	(await files.list('.')).entries.map((e) => e.type);
	await files.stat('a');
	await files.exists('a');
	await files.mkdir('d', {parents: true});
	await files.rename('a', 'd/a', {noreplace: true});
	await files.chmod('d/a', 0o644);
	await files.remove('d', {recursive: true});
	await files.uploadTar('up', new Uint8Array(0));
	await files.downloadTar('up');
	await files.uploadDir('/tmp/x', 'up');
	(await files.downloadDir('up', '/tmp/y')).map((x) => x.length);
	(await files.downloadTarStream('up')).statusCode;
	for await (const ev of files.watch('.', {signal: AbortSignal.timeout(10)})) {
		const w: WatchEvent = ev;
		void w.path;
	}
	const port = await sb.ports.open(8000, {unix: false});
	port.hostPort?.toFixed();
	await sb.ports.list();
	await sb.ports.close(8000);
	const snap = await sb.snapshot({name: 's'});
	await sb.snapshots();
	await sb.restore(snap.id);
	await sb.deleteSnapshot(snap);
	await sb.fork({snapshotName: 'f', copy: true, name: 'forked'});
	await sb.exec('echo hi');
	(await client.snapshots()).map((x) => x.sizeBytes);
	await client.snapshot('s');
	await client.deleteSnapshot('s');
	await client.create({fromSnapshot: 's', fromSnapshotCopy: true});
	await sb.suspend();
	await sb.resume();
	await sb.setTimeout({ttlMs: 1});
	await sb.setNetwork('allowlist', ['a.b:443']);
	(await sb.usage()).cpuTimeRemainingMs.toFixed();
	await sb.refresh();
	await sb.destroy();
	(await client.audit({since: new Date()})).map((a) => a.action);
	await client.audit({since: 3});
	(await client.auditVerify()).ok;
	const s: Session = await client.session('agent', Policy.strict(), {backend: 'container'});
	await s.execute('1', {language: 'python'});
	await s.executions();
	await s.destroy();
	try {
		await client.get('x');
	} catch (e) {
		if (e instanceof AgentdError) {
			const n: number = e.status;
			const c: string = e.code;
			const l: string | null = e.limit;
			void n; void c; void l;
		}
		if (e instanceof NotFoundError || e instanceof ConnectionError)
			e.message.trim();
	}
	client.close();
}
