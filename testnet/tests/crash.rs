//! Crash safety: a workload of 360 requests (at least 200 acknowledged) between three real nodes while nodes are killed with
//! SIGKILL at random moments and restarted. Afterwards every acknowledged case exists on both
//! parties, both replicas hold the same log (heads) and state, and nothing is duplicated.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use comity_node::admin::api::Action;
use comity_protocol::{CaseId, Decision};
use common::*;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 20;
const CASES_PER_ROUND: usize = 18;
const MEMBERS: [&str; 3] = ["FR", "DE", "IT"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_cases_survive_sigkills_and_replicas_converge() {
    let seed: u64 = std::env::var("COMITY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set COMITY_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Pulls list at most 16 cases each: catching up after a kill goes range by range.
    let dir = tempfile::tempdir().unwrap();
    let jurisdictions: Vec<_> = MEMBERS.iter().map(|m| j(m)).collect();
    let mut bloc = comity_testnet::Bloc::create_with(dir.path(), &jurisdictions, "testnet", |c| {
        c.testing.cases_per_pull = Some(16)
    })
    .await
    .unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();

    // case → (requester, executing), for every creation the API acknowledged.
    let mut acknowledged: BTreeMap<CaseId, (&str, &str)> = BTreeMap::new();
    for round in 0..ROUNDS {
        let victim = MEMBERS[rng.gen_range(0..MEMBERS.len())];
        let kill_after = Duration::from_millis(rng.gen_range(0..25));
        let mut work = Vec::new();
        for _ in 0..CASES_PER_ROUND {
            let from = MEMBERS[rng.gen_range(0..3)];
            let to = loop {
                let to = MEMBERS[rng.gen_range(0..3)];
                if to != from {
                    break to;
                }
            };
            let (client, approver) = (bloc.client(from), bloc.approver(from));
            work.push(tokio::spawn(async move {
                // Drafted, approved by a second officer, sent: acknowledged when `send` answers.
                let sent =
                    comity_testnet::send_request(&client, &approver, request(from, to), None).await;
                sent.ok().map(|c| (c.summary.case_id, from, to))
            }));
        }
        // Decisions on earlier cases, racing the kill too.
        let earlier: Vec<(CaseId, &str)> = acknowledged
            .iter()
            .filter(|_| rng.gen_bool(0.1))
            .map(|(id, (_, to))| (*id, *to))
            .collect();
        for (id, executing) in earlier {
            let client = bloc.client(executing);
            work.push(tokio::spawn(async move {
                let _ = client
                    .act(
                        id,
                        &Action::Decide {
                            decision: Decision::Accept,
                        },
                    )
                    .await;
                None
            }));
        }
        tokio::time::sleep(kill_after).await;
        bloc.kill(victim).unwrap();
        for task in work {
            if let Some((id, from, to)) = task.await.unwrap() {
                acknowledged.insert(id, (from, to));
            }
        }
        bloc.start(victim).unwrap();
        bloc.wait_up(victim, Duration::from_secs(30)).await.unwrap();
        eprintln!(
            "round {round}: killed {victim} after {kill_after:?}; {} acknowledged",
            acknowledged.len()
        );
    }
    assert!(
        acknowledged.len() >= 200,
        "at least 200 cases acknowledged, got {}",
        acknowledged.len()
    );

    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    bloc.wait_converged(Duration::from_secs(120)).await.unwrap();
    for member in MEMBERS {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while bloc.client(member).status().await.unwrap().outbox_depth > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{member}'s outbox does not drain"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    bloc.wait_converged(Duration::from_secs(30)).await.unwrap();

    let mut lists = BTreeMap::new();
    for member in MEMBERS {
        let cases = bloc.client(member).cases().await.unwrap();
        let ids: BTreeSet<CaseId> = cases.iter().map(|c| c.case_id).collect();
        assert_eq!(ids.len(), cases.len(), "{member} lists a case twice");
        lists.insert(member, cases);
    }
    for (id, (from, to)) in &acknowledged {
        let mine = lists[from].iter().find(|c| c.case_id == *id);
        let theirs = lists[to].iter().find(|c| c.case_id == *id);
        let (Some(mine), Some(theirs)) = (mine, theirs) else {
            panic!("acknowledged case {id} ({from}→{to}) is missing on a party");
        };
        assert_eq!(mine.heads, theirs.heads, "case {id}");
        assert_eq!(mine.state, theirs.state, "case {id}");
        assert_ne!(mine.state, "submitted", "case {id} was never receipted");
    }
    // Logs hold each event once, on both sides of every acknowledged case: per author,
    // sequences are exactly 1..=n, no repeat and no gap.
    for (id, (from, to)) in &acknowledged {
        for member in [from, to] {
            let log = bloc.client(member).log(*id).await.unwrap();
            let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for entry in &log.entries {
                seqs.entry(entry.author.to_string())
                    .or_default()
                    .push(entry.seq);
            }
            for (author, mut seq) in seqs {
                seq.sort_unstable();
                let expected: Vec<u64> = (1..=seq.len() as u64).collect();
                assert_eq!(seq, expected, "case {id} at {member}: {author}'s events");
            }
        }
    }
}
