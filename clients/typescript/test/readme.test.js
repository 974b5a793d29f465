// The README's quick start, run as written (its first ```js block) against a real daemon.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {startDaemon} from './daemon.js';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('README quick start runs as written', async () => {
	const readme = fs.readFileSync(path.join(pkg, 'README.md'), 'utf8');
	const code = /```js\n([\s\S]*?)```/.exec(readme)[1];
	const daemon = await startDaemon('--backend', 'container');
	// inside the package, so that `import '@agentd/sdk'` resolves to it (a self-reference)
	const file = path.join(pkg, `.readme-${process.pid}.mjs`);
	fs.writeFileSync(file, code);
	try {
		const out = await new Promise((resolve, reject) => {
			execFile(process.execPath, [file], {env: {...process.env, AGENTD_SOCKET: daemon.socket},
				timeout: 60000}, (err, stdout, stderr) =>
				err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout));
		});
		assert.equal(out, 'héllo\n42\n');
	} finally {
		fs.rmSync(file, {force: true});
		await daemon.stop();
	}
});
