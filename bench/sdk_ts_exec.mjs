// bench/sdk_ts_exec.mjs SOCK ID N: N execs of /bin/true in sandbox ID through the TypeScript
// SDK (one client, kept-alive connection), after 20 warm-up ones; prints p50/p99/mean in us.
import {Client} from '../clients/typescript/src/index.js';

const [sock, id, n] = [process.argv[2], process.argv[3], Number(process.argv[4] || 1000)];
const client = new Client({socketPath: sock});
const sb = await client.get(id);
for (let i = 0; i < 20; i++)
	await sb.exec(['/bin/true']);
const t = [];
for (let i = 0; i < n; i++) {
	const t0 = process.hrtime.bigint();
	const r = await sb.exec(['/bin/true']);
	t.push(Number(process.hrtime.bigint() - t0) / 1000);
	if (r.exitCode !== 0)
		throw new Error(`exit ${r.exitCode}`);
}
t.sort((a, b) => a - b);
const q = (p) => t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(0);
console.log(`sdk-ts execs=${n} p50_us=${q(0.5)} p99_us=${q(0.99)} ` +
	`mean_us=${(t.reduce((a, b) => a + b, 0) / n).toFixed(0)}`);
client.close();
