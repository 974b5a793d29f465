// Over TCP with the bearer token, and what a second daemon's bounds answer.
import {after, before, test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import * as sdk from '../src/index.js';
import {Client, OverCapacityError, UnauthorizedError} from '../src/index.js';
import {startDaemon} from './daemon.js';

let daemon, port, token;

async function freePort() {
	const s = net.createServer();
	await new Promise((r) => s.listen(0, '127.0.0.1', r));
	const p = s.address().port;
	await new Promise((r) => s.close(r));
	return p;
}

before(async () => {
	port = await freePort();
	token = 'tok-' + 'x'.repeat(28);
	const dir = fs.mkdtempSync('/var/tmp/agentd-ts-token-');
	fs.writeFileSync(path.join(dir, 'token'), token + '\n', {mode: 0o600});
	daemon = await startDaemon('--listen', `127.0.0.1:${port}`, '--token-file',
		path.join(dir, 'token'), '--max-sandboxes', '1');
	daemon.tokenDir = dir;
});

after(async () => {
	await daemon?.stop();
	fs.rmSync(daemon.tokenDir, {recursive: true, force: true});
});

test('TCP: the token is sent; a wrong one is an UnauthorizedError', async () => {
	const c = new Client({url: `http://127.0.0.1:${port}`, token});
	let h = null;
	for (let i = 0; i < 100 && !h; i++)
		h = await c.health().catch(() => new Promise((r) => setTimeout(() => r(null), 50)));
	assert.equal(h.status, 'ok');
	const sb = await c.create({backend: 'container'});
	assert.equal((await sb.exec(['echo', 'tcp'])).stdout, 'tcp\n');
	// --max-sandboxes 1: the second is a 429 naming the bound
	await assert.rejects(c.create({backend: 'container'}), (e) =>
		e instanceof OverCapacityError && e.status === 429 && e.code === 'over_capacity' &&
		e.limit === '--max-sandboxes');
	await sb.destroy();
	c.close();
	const bad = new Client({url: `http://127.0.0.1:${port}`, token: 'wrong-' + 'y'.repeat(20)});
	await assert.rejects(bad.health(), (e) => e instanceof UnauthorizedError &&
		e.status === 401 && e.message === 'invalid token');
	bad.close();
	const none = new Client({url: `http://127.0.0.1:${port}`});
	await assert.rejects(none.health(), {status: 401, message: 'a bearer token is required'});
	none.close();
});

test('index.js exports what index.d.ts declares', () => {
	const dts = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)),
		'../src/index.d.ts'), 'utf8');
	const declared = [...dts.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]);
	assert.deepEqual(Object.keys(sdk).sort(), declared.sort());
});
