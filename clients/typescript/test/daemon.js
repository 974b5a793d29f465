// daemon.js: a real `agentd serve` for the tests, on a temporary socket and state dir,
// destroying its sandboxes when it stops. $AGENTD_BUILD (as for the Python tests) or the
// project's build/ gives the binary.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BUILD = path.resolve(process.env.AGENTD_BUILD || path.join(here, '../../../build'));
export const AGENTD = process.env.AGENTD_BIN || path.join(BUILD, 'agentd');

export async function startDaemon(...extra) {
	const dir = fs.mkdtempSync(path.join('/var/tmp', 'agentd-ts-'));
	fs.chmodSync(dir, 0o711);
	const socket = path.join(dir, 'agentd.sock');
	const logPath = path.join(dir, 'daemon.log');
	const log = fs.openSync(logPath, 'a');
	const proc = spawn(AGENTD, ['serve', '--socket', socket, '--state-dir', path.join(dir, 'state'),
		'--drain', '1s', '--destroy-on-exit', ...extra],
	{stdio: ['ignore', log, log], env: {PATH: '/usr/sbin:/usr/bin:/sbin:/bin'}});
	let exited = null;
	proc.on('exit', (code, sig) => { exited = code ?? sig; });
	const readLog = () => fs.readFileSync(logPath, 'utf8');
	const deadline = Date.now() + 20000;
	while (!fs.existsSync(socket)) {
		if (exited !== null)
			throw new Error(`agentd serve exited (${exited}): ${readLog()}`);
		if (Date.now() > deadline)
			throw new Error(`agentd serve did not come up: ${readLog()}`);
		await new Promise((r) => setTimeout(r, 20));
	}
	return {
		socket, dir, proc, readLog,
		async stop() {
			if (exited === null) {
				const gone = new Promise((r) => proc.once('exit', r));
				proc.kill('SIGTERM');
				await gone;
			}
			fs.rmSync(dir, {recursive: true, force: true});
		},
	};
}
