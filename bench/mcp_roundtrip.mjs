// MCP tools/call round trip: `1+1` in a warm python context through `agentd mcp --embedded`
// (stdio), timed by the official SDK client; prints p50/p90 over N calls.
// usage: node bench/mcp_roundtrip.mjs BUILD_DIR [N]   (run `npm ci` in tests/mcp first)
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
const require = createRequire(resolve('tests/mcp/package.json'));
const { Client } = await import(require.resolve('@modelcontextprotocol/sdk/client/index.js'));
const { StdioClientTransport } = await import(require.resolve('@modelcontextprotocol/sdk/client/stdio.js'));
const build = resolve(process.argv[2] ?? 'build'), n = Number(process.argv[3] ?? 200);
const client = new Client({ name: 'bench', version: '1' });
await client.connect(new StdioClientTransport({ command: `${build}/agentd`, args: ['mcp', '--embedded'], stderr: 'ignore' }));
const sid = (await client.callTool({ name: 'sandbox_create', arguments: {} })).structuredContent.sandbox_id;
const run = () => client.callTool({ name: 'run_code', arguments: { sandbox_id: sid, language: 'python', code: '1+1' } });
for (let i = 0; i < 10; i++) await run(); // warm: the interpreter started, the paths hot
const ms = [];
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  const r = await run();
  ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  if (r.structuredContent.result !== '2') throw new Error(JSON.stringify(r));
}
ms.sort((a, b) => a - b);
console.log(`tools/call run_code 1+1 (warm python), ${n} calls: p50 ${ms[n >> 1].toFixed(2)} ms, p90 ${ms[Math.floor(n * 0.9)].toFixed(2)} ms`);
await client.close();
