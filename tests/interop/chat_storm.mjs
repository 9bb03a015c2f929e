// The reconnection storm as a test (test_chat_storm.sh): runs
// bench/chat/storm.mjs's storm() and checks its outcome instead of timing
// it. `node chat_storm.mjs BASE_URL storm USERS` with DX_STORM_CTL, the
// directory shared with the script (it writes `restart`, storm() `ready`).
import path from 'node:path';
import { check, run } from './chat_lib.mjs';
import { storm } from '../../bench/chat/storm.mjs';

const [base] = process.argv.slice(2);

await run({
  async storm(arg) {
    const users = Number(arg ?? 2000);
    const r = await storm({
      url: base, ctl: process.env.DX_STORM_CTL ?? path.join(process.cwd(), 'ctl'), users, k: 3, inflight: 1,
      stormTimeoutMs: Number(process.env.DX_STORM_TIMEOUT ?? 180) * 1000,
      log: (line) => console.log(`     ${line}`),
    });
    console.log(`     ${JSON.stringify(r)}`);
    const v = r.verify;
    check(r.acked_before_kill === users * 3, `${users * 3} sends acked before the kill (${r.acked_before_kill})`);
    check(r.outcome === 'ok', `all ${users} users back, synced and their resends acked (${r.outcome}; ` +
      `restart → all synced ${r.restart_ms.all_synced} ms, ${r.handshake_failures} failed handshakes)`);
    check(!r.client_errors.length, `no client errors ${JSON.stringify(r.client_errors)}`);
    check(!v.error, `history read back (${v.error ?? 'ok'})`);
    check(v.convs === users / 2, `history of all ${users / 2} direct conversations (${v.convs})`);
    check(v.acked === users * 4 && !v.unacked, `every send acked in the end, the in-flight ones included ` +
      `(${v.acked} of ${users * 4}, ${v.unacked} never acked)`);
    check(!v.lost, `no acked message lost (${v.lost})`);
    check(!v.duplicates && !v.extra, `each cid stored once (${v.duplicates} duplicates, ${v.extra} extra)`);
    check(!v.wrong_seq, `each at the seq of its ack (${v.wrong_seq} differ)`);
    check(!v.gaps, `every client holds its conversation without a gap after the sync (${v.gaps})`);
    if (v.problems.length) console.log(`     ${v.problems.join('\n     ')}`);
    check(r.healthz.answered_during_storm > 0, `/healthz answered during the storm ` +
      `(${r.healthz.answered_during_storm} of ${r.healthz.polls}, max ${r.healthz.max_ms} ms)`);
  },
});
