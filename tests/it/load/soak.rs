//! A soak: thousands of compiles of small generated C files through one server, several
//! wrappers at a time, a tenth of the files rewritten each round so misses and puts go on
//! beside the hits. Every object is checked against plain gcc's, the whole run is bounded in
//! time, and the server's resident memory (`VmRSS`) is measured at the start and the end.
//!
//! CI runs 1,000 compiles; `HOARD_SOAK_COMPILES=5000 cargo test --test it -- load::soak --nocapture`
//! runs the full soak.

use std::time::{Duration, Instant};

use crate::load::{Job, digest, plain_digest, run_wrapped};
use crate::support::{self, Sandbox, counter, rss_kib};

const FILES: usize = 100;
const CHANGED_PER_ROUND: usize = 10;
const PARALLEL: usize = 8;

fn compiles_wanted() -> usize {
    std::env::var("HOARD_SOAK_COMPILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn source(i: usize, version: usize) -> String {
    format!(
        "static int helper{i}(int x) {{ return x ^ {version}; }}\n\
         int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += helper{i}(k) * {i}; return s; }}\n"
    )
}

#[test]
fn a_soak_of_thousands_of_compiles_stays_correct_and_bounded_in_time_and_memory() {
    let _machine = support::loading_the_machine();
    let total = compiles_wanted();
    let rounds = total.div_ceil(FILES);
    let sandbox = Sandbox::new();
    sandbox.start_server();
    let pid = sandbox.server_pid().expect("the server's pid file");
    let rss_idle = rss_kib(pid);

    let src = sandbox.dir.path().join("src");
    let out = sandbox.dir.path().join("out");
    let scratch = sandbox.dir.path().join("plain");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let jobs: Vec<Job> = (0..FILES)
        .map(|i| Job {
            cwd: src.clone(),
            source: format!("f{i}.c").into(),
            object: out.join(format!("f{i}.o")),
        })
        .collect();
    let mut versions = vec![0usize; FILES];
    for (i, job) in jobs.iter().enumerate() {
        std::fs::write(src.join(&job.source), source(i, 0)).unwrap();
    }
    let mut plain: Vec<blake3::Hash> = jobs
        .iter()
        .map(|j| plain_digest(j, &["-O1"], &scratch))
        .collect();

    let started = Instant::now();
    let mut plain_time = Duration::ZERO;
    let mut rss_after_first = 0;
    let mut rss_peak = rss_idle;
    for round in 0..rounds {
        if round > 0 {
            let t = Instant::now();
            for k in 0..CHANGED_PER_ROUND {
                let i = (round * CHANGED_PER_ROUND + k) % FILES;
                versions[i] += 1;
                std::fs::write(src.join(&jobs[i].source), source(i, versions[i])).unwrap();
                plain[i] = plain_digest(&jobs[i], &["-O1"], &scratch);
            }
            plain_time += t.elapsed();
        }
        for job in &jobs {
            let _ = std::fs::remove_file(&job.object);
        }
        run_wrapped(&sandbox, &jobs, &["-O1"], PARALLEL);
        for (job, plain) in jobs.iter().zip(&plain) {
            assert_eq!(
                digest(&job.object),
                *plain,
                "round {round}: {} differs from plain gcc's",
                job.object.display()
            );
        }
        let rss = rss_kib(pid);
        rss_peak = rss_peak.max(rss);
        if round == 0 {
            rss_after_first = rss;
        }
    }
    let elapsed = started.elapsed().saturating_sub(plain_time);
    let rss_end = rss_kib(pid);
    let stats = sandbox.stats();
    let done = rounds * FILES;
    println!(
        "soak: {done} compiles in {elapsed:?} ({:.0}/s, {PARALLEL} at a time); server VmRSS \
         idle {rss_idle} KiB, after round 1 {rss_after_first} KiB, peak {rss_peak} KiB, end \
         {rss_end} KiB; hits {}, misses {}, writes {}",
        f64::from(u32::try_from(done).unwrap()) / elapsed.as_secs_f64(),
        counter(&stats, "cache_hits"),
        counter(&stats, "cache_misses"),
        counter(&stats, "cache_writes"),
    );
    assert_eq!(
        sandbox.server_pids(),
        vec![pid],
        "the server was replaced during the soak"
    );
    assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(counter(&stats, "cache_errors"), 0, "{stats}");
    assert_eq!(
        counter(&stats, "cache_hits") + counter(&stats, "cache_misses"),
        done as u64,
        "{stats}"
    );
    // Bounded in time: a wrapper costs a few tens of milliseconds of CPU at most; a stall or
    // a server slowing down as it ages blows this budget.
    let budget = Duration::from_millis(60) * u32::try_from(done).unwrap() + Duration::from_secs(30);
    assert!(
        elapsed < budget,
        "{done} compiles took {elapsed:?}, over {budget:?}"
    );
    // Memory: whatever the server keeps per request must not accumulate.
    assert!(
        rss_end < rss_after_first + 32 * 1024,
        "server VmRSS grew from {rss_after_first} KiB to {rss_end} KiB over the soak"
    );
}
