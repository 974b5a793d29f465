// The SDK against a real `agentd serve` started here: every call of the API, streaming
// with multi-byte characters split across chunks, errors, cancellation.
import {after, before, describe, test} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
	Client, Policy, Sandbox, AgentdError, BadRequestError, NotFoundError, ConflictError,
	TooLargeError, LimitExceededError, ConnectionError, TimeoutError, CommandFailedError,
	defaultSocketPath,
} from '../src/index.js';
import {startDaemon} from './daemon.js';

let daemon, client;
const made = [];

async function sandbox(opts = {}) {
	const sb = await client.create({backend: 'container', ...opts});
	made.push(sb);
	return sb;
}

/** Host pids whose command line holds marker (the sandbox's processes are visible). */
function pidsWith(marker) {
	const out = [];
	for (const p of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(p))
			continue;
		try {
			if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker))
				out.push(Number(p));
		} catch { /* gone meanwhile */ }
	}
	return out;
}

async function until(pred, ms = 15000) {
	const end = Date.now() + ms;
	while (!(await pred())) {
		if (Date.now() > end)
			return false;
		await new Promise((r) => setTimeout(r, 50));
	}
	return true;
}

before(async () => {
	daemon = await startDaemon('--max-file-size', '1M');
	client = new Client({socketPath: daemon.socket});
	await until(async () => (await client.health().catch(() => null))?.status === 'ok');
});

after(async () => {
	for (const sb of made)
		await sb.destroy().catch(() => {});
	client?.close();
	await daemon?.stop();
});

describe('daemon', () => {
	test('health, backends, metrics', async () => {
		const h = await client.health();
		assert.equal(h.status, 'ok');
		assert.equal(typeof h.activeSandboxes, 'number');
		const names = (await client.backends()).map((b) => b.name);
		assert.ok(names.includes('container'), names.join());
		assert.equal((await client.backend('container')).available, true);
		assert.match(await client.metrics(), /agentd_sandboxes_created_total/);
	});

	test('the socket is found as the CLI finds it', () => {
		assert.equal(defaultSocketPath({AGENTD_SOCKET: '/x/y.sock'}), '/x/y.sock');
		assert.equal(defaultSocketPath({}), process.geteuid() === 0
			? '/run/agentd/agentd.sock' : '/tmp/agentd.sock');
	});

	test('no daemon: a ConnectionError naming the socket', async () => {
		const c = new Client({socketPath: path.join(daemon.dir, 'nothing.sock')});
		await assert.rejects(c.health(), (e) => e instanceof ConnectionError &&
			e.status === 0 && e.message.includes('nothing.sock') &&
			e.message.includes('agentd serve'));
		c.close();
	});
});

describe('sandboxes', () => {
	test('create with a policy builder, get by id and name, list with filters, destroy',
		async () => {
			const policy = Policy.strict().memory(256 << 20).wallTime(60000)
				.env('GREETING', 'hello').label('team', 'sdk-ts').label('run', 'a=b');
			const sb = await sandbox({policy, name: 'ts-sdk-one', ttlMs: 600000});
			assert.match(sb.id, /^[0-9a-f]{32}$/);
			assert.equal(sb.name, 'ts-sdk-one');
			assert.equal(sb.info.spec.limits.max_memory_bytes, 256 << 20);
			assert.deepEqual(sb.info.labels, {team: 'sdk-ts', run: 'a=b'});
			assert.equal(sb.info.ttlMs, 600000);
			assert.equal((await client.get(sb.id)).name, 'ts-sdk-one');
			assert.equal((await client.get('ts-sdk-one')).id, sb.id);
			const r = await sb.exec(['sh', '-c', 'echo $GREETING']);
			assert.equal(r.stdout, 'hello\n');

			const other = await sandbox({policy: {labels: {team: 'other'}}});
			const ids = async (f) => (await client.list(f)).map((s) => s.id).sort();
			assert.deepEqual(await ids({labels: {team: 'sdk-ts'}}), [sb.id]);
			assert.deepEqual(await ids({labels: {team: 'sdk-ts', run: 'a=b'}}), [sb.id]);
			assert.deepEqual(await ids({labels: {team: 'nobody'}}), []);
			assert.deepEqual(await ids({name: 'ts-sdk-one'}), [sb.id]);
			assert.ok((await ids({state: 'ready', backend: 'container'})).includes(other.id));

			await other.destroy();
			assert.equal(other.state, 'destroyed');
			const gone = await client.get(other.id);
			assert.equal(gone.state, 'destroyed');
			await other.destroy(); // gone already: no error
			await assert.rejects(client.transport.json('DELETE', other.base), NotFoundError);
			await assert.rejects(other.exec(['true']), (e) => e instanceof ConflictError &&
				e.status === 409 && e.code === 'conflict' && /destroyed/.test(e.message));
		});

	test('suspend and resume, timeouts, usage, live network', async () => {
		const sb = await sandbox();
		await sb.suspend();
		assert.equal(sb.state, 'suspended');
		await assert.rejects(sb.exec(['true']), (e) => e instanceof ConflictError &&
			/suspended/.test(e.message));
		await sb.resume();
		assert.equal(sb.state, 'ready');
		await sb.setTimeout({ttlMs: 300000, idleTimeoutMs: 120000, onExpire: 'destroy'});
		assert.equal(sb.info.ttlMs, 300000);
		assert.equal(sb.info.idleTimeoutMs, 120000);
		assert.equal((await sb.exec(['sh', '-c', 'head -c 4096 /dev/zero > f'])).exitCode, 0);
		const u = await sb.usage();
		assert.equal(u.id, sb.id);
		assert.ok(u.cpuTimeLimitMs > 0 && u.bytesWritten >= 4096, JSON.stringify(u));
		await sb.setNetwork('allowlist', ['example.com:443']);
		assert.deepEqual(sb.info.network, {mode: 'allowlist', allow: ['example.com:443']});
		await sb.setNetwork('none');
		assert.equal((await sb.refresh()).info.network.mode, 'none');
	});
});

describe('exec', () => {
	let sb;
	before(async () => { sb = await sandbox(); });

	test('argv, env, workdir, stdin, exit code', async () => {
		const r = await sb.exec(['sh', '-c', 'cat; echo "$X" >&2; pwd; exit 3'],
			{stdin: 'in put\n', env: {X: 'ex'}, workdir: '/tmp'});
		assert.equal(r.exitCode, 3);
		assert.equal(r.stdout, 'in put\n/tmp\n');
		assert.equal(r.stderr, 'ex\n');
		assert.equal(r.timedOut, false);
		assert.equal(r.limitHit, null);
		assert.equal(r.sandboxId, sb.id);
		assert.equal(typeof r.resourceUsage.peakMemoryBytes, 'number');
		assert.equal((await sb.exec('echo $((6 * 7)) | tr 4 x')).stdout, 'x2\n');
		const bin = await sb.exec(['cat'], {stdin: new Uint8Array([0xff, 0x41])});
		assert.equal(bin.stdout, '\uFFFDA'); // sent base64, decoded with replacement
	});

	test('a timeout, a limit hit', async () => {
		const t = await sb.exec(['sleep', '30'], {timeoutMs: 300});
		assert.equal(t.exitCode, 124);
		assert.equal(t.timedOut, true);
		const o = await (await sandbox({policy: Policy.strict().outputBytes(1000)}))
			.exec(['sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" a']);
		assert.equal(o.limitHit, 'output');
		assert.equal(o.outputTruncated, true);
		// check: true turns each end into its error, the limit named
		await assert.rejects(sb.exec(['sleep', '30'], {timeoutMs: 200, check: true}), (e) =>
			e instanceof TimeoutError && e.result.exitCode === 124);
		const mem = await sandbox({policy: Policy.strict().memory(32 << 20)});
		await assert.rejects(mem.exec(['python3', '-c', 'x = bytearray(200 << 20)'],
			{check: true}), (e) => e instanceof LimitExceededError && e.limit === 'memory' &&
			e.result.exitCode !== 0);
		await assert.rejects(sb.exec('echo oops >&2; exit 4', {check: true}), (e) =>
			e instanceof CommandFailedError && e.result.exitCode === 4 &&
			e.message === 'exit 4: oops\n');
		assert.equal((await sb.exec(['true'], {check: true})).exitCode, 0);
	});

	test('onStdout/onStderr: multi-byte characters split across chunks come out whole',
		async () => {
			// "\xff" makes the first chunk invalid UTF-8, so the daemon sends it as base64
			// with the euro sign's first two bytes; the third byte comes in the next chunk,
			// 200 ms later. Likewise on stderr with a 4-byte character.
			const script = "printf '\\377\\342\\202'; sleep 0.2; printf '\\254 ok\\n';" +
				"printf '\\377\\360\\237' >&2; sleep 0.2; printf '\\230\\200\\n' >&2";
			const outs = [], errs = [], outBytes = [];
			const r = await sb.exec(['sh', '-c', script], {
				onStdout: (text, bytes) => { outs.push(text); outBytes.push(bytes); },
				onStderr: (text) => { errs.push(text); },
			});
			assert.equal(r.exitCode, 0);
			assert.equal(outs.join(''), '\uFFFD€ ok\n');
			assert.equal(errs.join(''), '\uFFFD😀\n');
			assert.equal(r.stdout, '\uFFFD€ ok\n');
			assert.equal(r.stderr, '\uFFFD😀\n');
			assert.ok(outBytes.length >= 2, 'the output came in more than one chunk');
			assert.ok(!outs.some((t) => t.includes('\uFFFD\uFFFD')), outs.join('|'));
			assert.deepEqual(Buffer.concat(outBytes),
				Buffer.from([0xff, 0xe2, 0x82, 0xac, 0x20, 0x6f, 0x6b, 0x0a]));
		});

	test('multi-byte characters split across the HTTP chunks of a long line', async () => {
		// 600000 bytes of 3- and 4-byte characters: the daemon's lines are longer than a
		// socket read, so the reads end inside characters (and inside JSON lines)
		const n = 100000;
		const outs = [];
		const r = await sb.exec(['python3', '-c', `import sys; sys.stdout.write("€😀" * ${n})`],
			{onStdout: (t) => { outs.push(t); }});
		assert.equal(r.exitCode, 0);
		assert.equal(outs.join('').length, r.stdout.length);
		assert.ok(r.stdout === '€😀'.repeat(n), 'the text came out changed: ' +
			`${r.stdout.length} code units, U+FFFD at ${r.stdout.indexOf('\uFFFD')}`);
		const events = [];
		for await (const ev of sb.execStream(['python3', '-c',
			`import sys; sys.stdout.write("é" * ${3 * n})`]))
			events.push(ev);
		assert.equal(events.filter((e) => e.type === 'stdout').map((e) => e.text).join(''),
			'é'.repeat(3 * n));
	});

	test('a character cut by the end of the output is one U+FFFD', async () => {
		const r = await sb.exec(['sh', '-c', "printf 'a\\342\\202'"], {onStdout: () => {}});
		assert.equal(r.stdout, 'a\uFFFD');
	});

	test('execStream: an async iterator of output, then exit', async () => {
		const events = [];
		for await (const ev of sb.execStream(['sh', '-c', 'echo one; sleep 0.1; echo two >&2']))
			events.push(ev);
		assert.deepEqual(events.filter((e) => e.type !== 'exit').map((e) => [e.type, e.text]),
			[['stdout', 'one\n'], ['stderr', 'two\n']]);
		const last = events.at(-1);
		assert.equal(last.type, 'exit');
		assert.equal(last.exit.exitCode, 0);
	});

	test('an AbortSignal kills the command', async () => {
		const marker = `${61 + Math.random()}`.slice(0, 9);
		const ac = new AbortController();
		const started = [];
		const p = sb.exec(['sh', '-c', `echo started; sleep ${marker}; touch /tmp/not-killed`],
			{signal: ac.signal, onStdout: (t) => { started.push(t); ac.abort(); }});
		await assert.rejects(p, {name: 'AbortError'});
		assert.deepEqual(started, ['started\n']);
		assert.ok(await until(() => pidsWith(`sleep\0${marker}`).length === 0),
			'the sleep still runs after the abort');
		assert.equal(await sb.files.exists('/tmp/not-killed'), false);
		// unstreamed too
		const ac2 = new AbortController();
		const p2 = sb.exec(['sleep', marker], {signal: ac2.signal});
		assert.ok(await until(() => pidsWith(`sleep\0${marker}`).length === 1));
		ac2.abort();
		await assert.rejects(p2, {name: 'AbortError'});
		assert.ok(await until(() => pidsWith(`sleep\0${marker}`).length === 0));
	});

	test('leaving an execStream loop early kills the command', async () => {
		const marker = `${71 + Math.random()}`.slice(0, 9);
		for await (const ev of sb.execStream(['sh', '-c', `echo go; exec sleep ${marker}`])) {
			assert.equal(ev.text, 'go\n');
			break;
		}
		assert.ok(await until(() => pidsWith(`sleep\0${marker}`).length === 0));
	});
});

describe('errors', () => {
	test('status, code, message and limit', async () => {
		await assert.rejects(client.get('0'.repeat(32)), (e) =>
			e instanceof NotFoundError && e instanceof AgentdError && e instanceof Error &&
			e.status === 404 && e.code === 'not_found' && e.message.includes('0'.repeat(32)) &&
			e.limit === null);
		await assert.rejects(client.create({policy: Policy.strict().memory(5)}), (e) =>
			e instanceof BadRequestError && e.status === 400 && e.code === 'bad_request' &&
			/^spec: limits\.max_memory_bytes/.test(e.message));
		await sandbox({name: 'ts-sdk-taken'});
		await assert.rejects(client.create({name: 'ts-sdk-taken'}), (e) =>
			e instanceof ConflictError && /a sandbox named ts-sdk-taken exists/.test(e.message));
		const sb = await sandbox({policy: Policy.strict().snapshotBytes(0)});
		await assert.rejects(sb.snapshot(), (e) => e instanceof TooLargeError &&
			e instanceof LimitExceededError &&
			e.status === 413 && e.code === 'too_large' && e.limit === 'limits.max_snapshot_bytes');
		await assert.rejects(sb.files.write('big', new Uint8Array(2 << 20)), (e) =>
			e instanceof TooLargeError && e.limit === '--max-file-size');
	});
});

describe('processes', () => {
	let sb;
	before(async () => { sb = await sandbox(); });

	test('start, stdin, output, wait, list, get', async () => {
		const p = await sb.processes.start(['sh', '-c', 'while read l; do echo "got $l"; done; exit 5'],
			{stdin: true});
		assert.equal(p.state, 'running');
		assert.ok(p.pid > 0);
		assert.equal(await p.writeStdin('a€\n'), 5);
		await p.writeStdin(Buffer.from('b\n'), {close: true});
		const seen = [];
		const ended = await p.wait({onStdout: (t) => { seen.push(t); }});
		assert.equal(ended.exitCode, 5);
		assert.equal(ended.state, 'exited');
		assert.equal(ended.stdout, 'got a€\ngot b\n');
		assert.equal(seen.join(''), 'got a€\ngot b\n');
		assert.ok((await sb.processes.list()).some((x) => x.pid === p.pid));
		assert.equal((await sb.processes.get(p.pid)).exitCode, 5);
		// output again from an offset inside "€": the daemon starts at that byte
		const again = [];
		for await (const ev of p.output({offset: 4, stream: 'stdout'}))
			again.push(ev);
		assert.equal(again[0].offset, 4);
		assert.equal(again.at(-1).type, 'exit');
	});

	test('output as an async iterator with follow, signal, kill', async () => {
		const p = await sb.processes.start(['sh', '-c', 'trap "echo term; exit 7" TERM; ' +
			'echo ready; while :; do sleep 0.05; done']);
		const it = p.output({follow: true});
		const first = await it.next();
		assert.deepEqual([first.value.type, first.value.text], ['stdout', 'ready\n']);
		await p.signal('TERM');
		const rest = [];
		for await (const ev of it)
			rest.push(ev);
		assert.equal(rest.filter((e) => e.type === 'stdout').map((e) => e.text).join(''), 'term\n');
		assert.equal(rest.at(-1).exit.exitCode, 7);
		const r = await sb.processes.start('echo out; echo err >&2');
		await r.wait();
		assert.equal(await r.readOutput(), 'out\n');
		assert.equal(await r.readOutput('stderr'), 'err\n');
		const q = await sb.processes.start(['sleep', '1000']);
		await q.kill();
		assert.equal(q.state, 'killed');
		await assert.rejects(sb.processes.get(q.pid), NotFoundError);
		await assert.rejects(p.signal('KILL'), ConflictError);
	});
});

describe('contexts', () => {
	let sb;
	before(async () => { sb = await sandbox(); });

	test('runCode: text, value, error, rich outputs, state kept', async () => {
		const ctx = await sb.contexts.create('python');
		assert.equal(ctx.language, 'python');
		const two = await ctx.run('x = 41\n1 + 1');
		assert.equal(two.status, 'ok');
		assert.equal(two.text, '2');
		assert.deepEqual(two.value, {'text/plain': '2'});
		assert.equal((await ctx.run('print(x + 1)')).stdout, '42\n');
		await assert.rejects(ctx.run('1/0', {check: true}), (e) =>
			e instanceof CommandFailedError && /ZeroDivisionError/.test(e.message));
		const err = await ctx.run('1/0');
		assert.equal(err.status, 'error');
		assert.equal(err.error.name, 'ZeroDivisionError');
		assert.match(err.error.traceback, /ZeroDivisionError/);
		const rich = await ctx.run(
			'class H:\n    def _repr_html_(self): return "<b>hi</b>"\n' +
			'display(H())\nH()');
		assert.equal(rich.results.length, 2);
		assert.equal(rich.results[0]['text/html'], '<b>hi</b>');
		assert.equal(rich.value['text/html'], '<b>hi</b>');
		assert.equal((await sb.contexts.list()).length, 1);
		assert.equal((await sb.contexts.get(ctx.id)).id, ctx.id);
		const timeout = await ctx.run('import time\ntime.sleep(30)', {timeoutMs: 300});
		assert.equal(timeout.status, 'timeout');
		assert.equal((await ctx.run('x')).text, '41');
		await ctx.delete();
		assert.equal(ctx.state, 'gone');
		await assert.rejects(sb.contexts.get(ctx.id), NotFoundError);
	});

	test('streamed cells: output and results as they come; node; sandbox.runCode', async () => {
		const ctx = await sb.contexts.create('python');
		const outs = [], results = [];
		const r = await ctx.run(
			'import sys\nsys.stdout.write("é"); sys.stdout.flush()\nprint("ü")\n' +
			'display(3)\n"done"',
			{onStdout: (t) => { outs.push(t); }, onResult: (b) => { results.push(b); }});
		assert.equal(r.status, 'ok');
		assert.equal(outs.join(''), 'éü\n');
		assert.equal(r.stdout, 'éü\n');
		assert.deepEqual(results.map((b) => b['text/plain']), ['3', "'done'"]);
		assert.equal(r.text, "'done'");
		const events = [];
		for await (const ev of ctx.runStream('raise ValueError("bad")'))
			events.push(ev.type);
		assert.deepEqual(events.filter((t) => t !== 'stderr'), ['error', 'done']);
		const js = await sb.runCode('let a = [1, 2]; a.length + 40', {language: 'node'});
		assert.equal(js.text, '42');
		assert.equal((await sb.runCode('a.length', {language: 'node'})).text, '2');
	});
});

describe('files', () => {
	let sb;
	before(async () => { sb = await sandbox(); });

	test('write, read, list, stat, mkdir, rename, chmod, remove', async () => {
		assert.deepEqual(await sb.files.write('d/e/f.txt', 'héllo', {parents: true}),
			{path: 'd/e/f.txt', size: 6});
		assert.equal(await sb.files.readText('d/e/f.txt'), 'héllo');
		assert.deepEqual([...await sb.files.read('d/e/f.txt')], [...Buffer.from('héllo')]);
		const st = await sb.files.stat('d/e/f.txt');
		assert.equal(st.type, 'file');
		assert.equal(st.size, 6);
		assert.equal(typeof st.mtimeMs, 'number');
		await sb.files.mkdir('m/n', {parents: true});
		await assert.rejects(sb.files.mkdir('m/n'), ConflictError);
		await sb.files.rename('d/e/f.txt', 'm/n/g.txt');
		await sb.files.chmod('m/n/g.txt', '600');
		assert.equal((await sb.files.stat('m/n/g.txt')).mode, '0600');
		const ls = await sb.files.list('m/n');
		assert.deepEqual(ls.entries.map((e) => e.name), ['g.txt']);
		assert.equal(ls.truncated, false);
		await assert.rejects(sb.files.remove('m'), ConflictError);
		await sb.files.remove('m', {recursive: true});
		assert.equal(await sb.files.exists('m'), false);
		await assert.rejects(sb.files.read('nope'), NotFoundError);
		await assert.rejects(sb.files.read('../etc/passwd'), BadRequestError);
	});

	test('upload and download a directory as tar', async () => {
		const src = fs.mkdtempSync(path.join(daemon.dir, 'tar-'));
		fs.mkdirSync(path.join(src, 'sub'));
		fs.writeFileSync(path.join(src, 'sub', 'a.txt'), 'A'.repeat(3000));
		fs.writeFileSync(path.join(src, 'b.txt'), 'ß');
		const tar = execFileSync('tar', ['-C', src, '-cf', '-', '.']);
		const up = await sb.files.uploadTar('up', tar);
		assert.ok(up.entries >= 3, JSON.stringify(up));
		assert.equal(await sb.files.readText('up/b.txt'), 'ß');
		const down = await sb.files.downloadTar('up');
		const names = execFileSync('tar', ['-tf', '-'], {input: down}).toString()
			.split('\n').filter(Boolean).map((n) => n.replace(/^\.\//, '')).sort();
		assert.deepEqual(names.filter((n) => n.endsWith('.txt')), ['b.txt', 'sub/a.txt']);
		const stream = await sb.files.downloadTarStream('up');
		let n = 0;
		for await (const c of stream)
			n += c.length;
		assert.equal(n, down.length);
		await assert.rejects(sb.files.uploadTar('bad', Buffer.from('not a tar'.repeat(100))),
			AgentdError);
	});

	test('uploadDir and downloadDir: a tree both ways, long names, links', async () => {
		const src = fs.mkdtempSync(path.join(daemon.dir, 'up-'));
		const long = 'd'.repeat(60) + '/' + 'e'.repeat(70);
		fs.mkdirSync(path.join(src, long), {recursive: true});
		fs.writeFileSync(path.join(src, long, 'deep.txt'), 'deep');
		fs.mkdirSync(path.join(src, 'sub'));
		fs.writeFileSync(path.join(src, 'sub', 'a.txt'), 'A'.repeat(1500));
		fs.writeFileSync(path.join(src, 'ß.txt'), 'ß');
		fs.symlinkSync('sub/a.txt', path.join(src, 'ln'));
		const up = await sb.files.uploadDir(src, 'tree');
		assert.ok(up.entries >= 7, JSON.stringify(up));
		assert.equal(await sb.files.readText(`tree/${long}/deep.txt`), 'deep');
		assert.equal(await sb.files.readText('tree/ß.txt'), 'ß');
		assert.equal((await sb.files.stat('tree/ln')).linkTarget, 'sub/a.txt');
		const dst = path.join(daemon.dir, 'down');
		const got = await sb.files.downloadDir('tree', dst);
		assert.ok(got.includes(`${long}/deep.txt`) && got.includes('ln'), got.join());
		assert.equal(fs.readFileSync(path.join(dst, long, 'deep.txt'), 'utf8'), 'deep');
		assert.equal(fs.readFileSync(path.join(dst, 'sub', 'a.txt'), 'utf8'), 'A'.repeat(1500));
		assert.equal(fs.readFileSync(path.join(dst, 'ß.txt'), 'utf8'), 'ß');
		assert.equal(fs.readlinkSync(path.join(dst, 'ln')), 'sub/a.txt');
	});

	test('downloadDir never writes through a symlink nor makes one out', async () => {
		await sb.files.write('hostile/sub/a.txt', 'from the sandbox', {parents: true});
		// a symlink already in the local directory where the archive has a directory
		const outside = fs.mkdtempSync(path.join(daemon.dir, 'outside-'));
		const dst = fs.mkdtempSync(path.join(daemon.dir, 'dst-'));
		fs.symlinkSync(outside, path.join(dst, 'sub'));
		await assert.rejects(sb.files.downloadDir('hostile', dst),
			/sub is a symbolic link \(never followed\)/);
		assert.deepEqual(fs.readdirSync(outside), []);
		// ... and where it has a file
		const dst2 = fs.mkdtempSync(path.join(daemon.dir, 'dst-'));
		fs.mkdirSync(path.join(dst2, 'sub'));
		fs.symlinkSync(path.join(outside, 'victim'), path.join(dst2, 'sub', 'a.txt'));
		await assert.rejects(sb.files.downloadDir('hostile', dst2), /never written through/);
		assert.deepEqual(fs.readdirSync(outside), []);
		// a link the sandbox made that points out of the directory
		await sb.exec(['ln', '-s', '/etc', 'hostile/escape']);
		const dst3 = fs.mkdtempSync(path.join(daemon.dir, 'dst-'));
		await assert.rejects(sb.files.downloadDir('hostile', dst3), /a link out of the directory/);
	});

	test('watch: changes as an async iterator, ended by the signal', async () => {
		await sb.files.mkdir('w');
		const ac = new AbortController();
		const seen = [];
		const done = (async () => {
			for await (const ev of sb.files.watch('w', {signal: ac.signal})) {
				seen.push(ev);
				if (ev.event === 'watching')
					await sb.files.write('w/new.txt', 'x');
				if (ev.event === 'create' || ev.event === 'modify')
					ac.abort();
			}
		})();
		await assert.rejects(done, {name: 'AbortError'});
		assert.equal(seen[0].event, 'watching');
		assert.ok(seen.some((e) => e.path === 'new.txt' && e.type === 'file'),
			JSON.stringify(seen));
	});
});

describe('ports and snapshots', () => {
	test('open, list, use and close a port', async () => {
		const sb = await sandbox();
		const srv = await sb.processes.start(['python3', '-m', 'http.server', '8000',
			'--bind', '127.0.0.1', '--directory', '/tmp']);
		await sb.files.write('/tmp/hello.txt', 'hi from inside');
		const port = await sb.ports.open(8000);
		assert.equal(port.port, 8000);
		assert.equal(port.host, '127.0.0.1');
		assert.deepEqual((await sb.ports.list()).map((p) => p.port), [8000]);
		let body = null;
		await until(async () => {
			body = await new Promise((resolve) => {
				http.get({host: '127.0.0.1', port: port.hostPort, path: '/hello.txt'}, (res) => {
					const parts = [];
					res.on('data', (c) => parts.push(c));
					res.on('end', () => resolve(Buffer.concat(parts).toString()));
				}).on('error', () => resolve(null));
			});
			return body !== null;
		});
		assert.equal(body, 'hi from inside');
		await sb.ports.close(8000);
		assert.deepEqual(await sb.ports.list(), []);
		await srv.kill();
	});

	test('snapshot, list, restore, a sandbox from it, delete', async () => {
		const sb = await sandbox();
		await sb.files.write('state.txt', 'v1');
		const snap = await sb.snapshot({name: 'ts-sdk-snap'});
		assert.equal(snap.name, 'ts-sdk-snap');
		assert.equal(snap.sandboxId, sb.id);
		assert.deepEqual((await sb.snapshots()).map((s) => s.id), [snap.id]);
		assert.ok((await client.snapshots()).some((s) => s.id === snap.id));
		assert.equal((await client.snapshot('ts-sdk-snap')).id, snap.id);
		await sb.files.write('state.txt', 'v2');
		assert.deepEqual(await sb.restore('ts-sdk-snap'), {sandboxId: sb.id, snapshotId: snap.id});
		assert.equal(await sb.files.readText('state.txt'), 'v1');
		const copy = await sandbox({fromSnapshot: snap.id, fromSnapshotCopy: true});
		assert.equal(copy.info.fromSnapshotMode, 'copy');
		assert.equal(await copy.files.readText('state.txt'), 'v1');
		await sb.deleteSnapshot(snap.id);
		await assert.rejects(client.snapshot(snap.id), NotFoundError);
		const s2 = await sb.snapshot();
		await client.deleteSnapshot(s2);
		await assert.rejects(client.snapshot(s2.id), NotFoundError);
		const forked = await sb.fork({snapshotName: 'ts-sdk-fork'});
		made.push(forked);
		assert.equal(await forked.files.readText('state.txt'), 'v1');
		assert.equal(forked.info.fromSnapshot, (await client.snapshot('ts-sdk-fork')).id);
	});
});

describe('audit and sessions', () => {
	test('a session keeps state between executions', async () => {
		const s = await client.session('ts-agent');
		assert.equal(s.agentId, 'ts-agent');
		assert.equal((await s.execute('x = 20')).status, 'completed');
		const r = await s.execute('print(x * 2 + 2)');
		assert.equal(r.result.stdout, '42\n');
		assert.equal((await s.executions()).length, 2);
		await s.destroy();
		await assert.rejects(s.execute('1'), AgentdError);
	});

	test('audit records and their verification', async () => {
		const sb = await sandbox();
		await sb.exec(['true']);
		const recs = await client.audit();
		assert.ok(recs.some((r) => r.action === 'exec' && r.sandboxId === sb.id));
		const last = recs.at(-1);
		assert.equal(typeof last.hash, 'string');
		assert.deepEqual(await client.audit({since: last.seq}), []);
		assert.ok((await client.audit({since: new Date(Date.now() - 3600e3)})).length > 0);
		const v = await client.auditVerify();
		assert.equal(v.ok, true);
		await assert.rejects(client.audit({since: 'yesterday'}), BadRequestError);
	});
});

test('Sandbox is the exported class', () => {
	assert.ok(made.every((s) => s instanceof Sandbox));
});
