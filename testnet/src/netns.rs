//! The namespace link layer (`up --links netns`): each member in a network namespace of its
//! own, on a bridge the testnet makes, so that what a link does happens to real packets in the
//! kernel rather than to a stream in a proxy:
//!
//! - **loss**: each packet to the other member is dropped at random (nftables `numgen`), each
//!   way, and TCP retransmits as it would on a bad route;
//! - a **blackhole**: every packet dropped, nothing closed;
//! - **down** (a partition): packets answered with a TCP reset, connections in place reset;
//! - a **reset** of the connections in place, once (`ss -K`).
//!
//! Delay, jitter and bandwidth need `tc netem`; where the kernel lacks it (`tc`: "Specified
//! qdisc kind is unknown") they are refused with that reason, and the proxy link layer
//! (`--links proxy`) models them. Needs root, `ip` (iproute2), `nft` (nftables) and `ss`.
//!
//! Each member's admin API listens on its namespace's address, with TLS (a certificate the
//! testnet makes and its clients pin), as a node's does beyond loopback. Everything is torn
//! down by `comity-testnet down`, and by the testnet's value when dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use comity_protocol::Jurisdiction;
use serde::{Deserialize, Serialize};

use crate::links::{Conditions, Control, ControlAnswer};

/// The testnet's namespaces, bridge and link conditions, in its directory.
pub const NETNS_FILE: &str = "netns.json";
/// The nftables table the link conditions live in, in each member's namespace.
const TABLE: &str = "comity_links";
/// Members' addresses start at .10 of the testnet's /24.
const FIRST_HOST: u8 = 10;

/// One member's place: its namespace, its address there, and the host's end of its veth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub namespace: String,
    pub address: Ipv4Addr,
    /// The veth's end on the bridge (the other end, inside, has the same name with `i`).
    pub veth: String,
}

/// The namespaces of one testnet: a bridge `cmtbrN` with 10.233.N.1/24 in this machine's
/// namespace (its admin clients reach the members through it), and a namespace per member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fabric {
    pub index: u8,
    pub bridge: String,
    pub members: BTreeMap<Jurisdiction, Place>,
    /// The links that are not clean, as (a, b, conditions) with a < b.
    #[serde(default)]
    pub impaired: Vec<(Jurisdiction, Jurisdiction, Conditions)>,
}

/// Runs a command; its error names the command and what it printed.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (install iproute2 and nftables)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace.
fn run_in(namespace: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", namespace, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Runs `nft -f -` inside a namespace with `script` on its input.
fn nft_in(namespace: &str, script: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (install nftables)")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft in {namespace}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The netem problem of this kernel, if it has none: `tc` tried in a namespace of the testnet.
pub fn netem_missing(namespace: &str) -> Option<String> {
    match run_in(
        namespace,
        "tc",
        &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
    ) {
        Ok(_) => {
            let _ = run_in(namespace, "tc", &["qdisc", "del", "dev", "lo", "root"]);
            None
        }
        Err(e) => Some(format!("{e:#}")),
    }
}

/// The nftables rules that put `conditions` on what `namespace`'s member exchanges with the
/// member at `other`. Each side loses its own outgoing packets, so a loss of 10 % is 10 % each
/// way; a blackhole and a cut are put on both directions of both sides. No I/O.
pub fn rules(other: Ipv4Addr, conditions: &Conditions) -> Vec<String> {
    if conditions.down {
        return vec![
            format!(
                "add rule inet {TABLE} out ip daddr {other} meta l4proto tcp counter reject with tcp reset"
            ),
            format!("add rule inet {TABLE} out ip daddr {other} counter drop"),
            format!(
                "add rule inet {TABLE} in ip saddr {other} meta l4proto tcp counter reject with tcp reset"
            ),
            format!("add rule inet {TABLE} in ip saddr {other} counter drop"),
        ];
    }
    if conditions.blackhole {
        return vec![
            format!("add rule inet {TABLE} out ip daddr {other} counter drop"),
            format!("add rule inet {TABLE} in ip saddr {other} counter drop"),
        ];
    }
    let per_10k = (conditions.loss * 10_000.0).round() as u32;
    if per_10k == 0 {
        return Vec::new();
    }
    vec![format!(
        "add rule inet {TABLE} out ip daddr {other} numgen random mod 10000 < {per_10k} counter drop"
    )]
}

/// What the namespace link layer cannot put on a link, or `None`. `netem` says what the
/// kernel lacks, if it does; it is asked only when the conditions need it.
pub fn unsupported(
    conditions: &Conditions,
    netem: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if conditions.delay_ms == 0 && conditions.jitter_ms == 0 && conditions.bandwidth == 0 {
        return None;
    }
    let why = match netem() {
        Some(problem) => format!("this kernel has no netem ({problem})"),
        None => "the namespace link layer does not shape traffic with netem yet".to_owned(),
    };
    Some(format!(
        "delay, jitter and bandwidth between namespaces need tc netem, and {why}; the namespace \
         link layer loses, blackholes and cuts real packets. For delay, run the testnet with \
         `--links proxy`, whose proxies model it"
    ))
}

fn key(a: &Jurisdiction, b: &Jurisdiction) -> (Jurisdiction, Jurisdiction) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

impl Fabric {
    /// Makes the bridge and one namespace per member. The first free index (bridge name) is
    /// taken, so that testnets made at once do not collide; what was made is removed again if
    /// a later step fails.
    pub fn create(members: &[Jurisdiction]) -> anyhow::Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            bail!("--links netns needs root (it makes network namespaces and a bridge)");
        }
        if members.len() > usize::from(254 - FIRST_HOST) {
            bail!("--links netns holds at most {} members", 254 - FIRST_HOST);
        }
        let mut claimed = None;
        for index in 1..=250u8 {
            let bridge = format!("cmtbr{index}");
            if Path::new("/sys/class/net").join(&bridge).exists() {
                continue;
            }
            // Taken atomically: a second testnet making the same bridge fails and moves on.
            if run("ip", &["link", "add", &bridge, "type", "bridge"]).is_ok() {
                claimed = Some((index, bridge));
                break;
            }
        }
        let Some((index, bridge)) = claimed else {
            bail!(
                "every testnet bridge name (cmtbr1 … cmtbr250) is taken: run `comity-testnet down` on old testnets"
            );
        };
        let mut fabric = Self {
            index,
            bridge: bridge.clone(),
            members: BTreeMap::new(),
            impaired: Vec::new(),
        };
        let made = (|| {
            run(
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/24", fabric.host()),
                    "dev",
                    &bridge,
                ],
            )?;
            // Where bridged traffic is filtered by the host's iptables (br_netfilter, and a
            // FORWARD policy of DROP as Docker sets it), this bridge's is not.
            let _ = run(
                "ip",
                &[
                    "link",
                    "set",
                    &bridge,
                    "type",
                    "bridge",
                    "nf_call_iptables",
                    "0",
                ],
            );
            run("ip", &["link", "set", &bridge, "up"])?;
            for j in members {
                fabric.add(j)?;
            }
            anyhow::Ok(())
        })();
        if let Err(e) = made {
            fabric.teardown();
            return Err(e);
        }
        Ok(fabric)
    }

    /// This machine's address on the bridge.
    pub fn host(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 233, self.index, 1)
    }

    /// Makes a namespace for one more member (one that joins), on the bridge, with its
    /// address, its loopback up and an empty table for link conditions.
    pub fn add(&mut self, j: &Jurisdiction) -> anyhow::Result<&Place> {
        if self.members.contains_key(j) {
            bail!("{j} already has a namespace in this testnet");
        }
        let n = self.members.len();
        if n >= usize::from(254 - FIRST_HOST) {
            bail!("--links netns holds at most {} members", 254 - FIRST_HOST);
        }
        let place = Place {
            namespace: format!("comity-{}-{}", self.index, j.as_str().to_lowercase()),
            address: Ipv4Addr::new(10, 233, self.index, FIRST_HOST + n as u8),
            veth: format!("cmt{}v{n}", self.index),
        };
        let inside = format!("{}i", place.veth);
        // A namespace left by a testnet killed before its teardown is replaced.
        let _ = run("ip", &["netns", "del", &place.namespace]);
        run("ip", &["netns", "add", &place.namespace])?;
        // Recorded at once, so that a failure below still tears it down.
        self.members.insert(j.clone(), place.clone());
        run(
            "ip",
            &[
                "link",
                "add",
                &place.veth,
                "type",
                "veth",
                "peer",
                "name",
                &inside,
            ],
        )?;
        run("ip", &["link", "set", &inside, "netns", &place.namespace])?;
        run("ip", &["link", "set", &place.veth, "master", &self.bridge])?;
        run("ip", &["link", "set", &place.veth, "up"])?;
        let ns = place.namespace.as_str();
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", place.address),
                "dev",
                &inside,
            ],
        )?;
        run("ip", &["-n", ns, "link", "set", &inside, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        nft_in(ns, &self.ruleset(j))?;
        Ok(&self.members[j])
    }

    pub fn place(&self, j: &Jurisdiction) -> anyhow::Result<&Place> {
        self.members
            .get(j)
            .with_context(|| format!("{j} has no namespace in this testnet"))
    }

    /// The whole table of `j`'s namespace, as `nft -f` reads it: emptied, then the rules of
    /// every impaired link of `j`.
    fn ruleset(&self, j: &Jurisdiction) -> String {
        let mut script = format!(
            "add table inet {TABLE}\nflush table inet {TABLE}\n\
             add chain inet {TABLE} out {{ type filter hook output priority 0; }}\n\
             add chain inet {TABLE} in {{ type filter hook input priority 0; }}\n"
        );
        for (a, b, conditions) in &self.impaired {
            let other = if a == j {
                b
            } else if b == j {
                a
            } else {
                continue;
            };
            if let Some(place) = self.members.get(other) {
                for rule in rules(place.address, conditions) {
                    script.push_str(&rule);
                    script.push('\n');
                }
            }
        }
        script
    }

    /// Puts the table of every member of `touched` in force.
    fn enforce(&self, touched: &[&Jurisdiction]) -> anyhow::Result<()> {
        for j in touched {
            nft_in(&self.place(j)?.namespace, &self.ruleset(j))?;
        }
        Ok(())
    }

    /// Resets every TCP connection between `a` and `b`, on both sides.
    fn reset(&self, a: &Jurisdiction, b: &Jurisdiction) -> anyhow::Result<()> {
        let (pa, pb) = (self.place(a)?, self.place(b)?);
        for (here, there) in [(pa, pb), (pb, pa)] {
            run_in(
                &here.namespace,
                "ss",
                &["-K", "-t", "dst", &there.address.to_string()],
            )
            .context("resetting connections (ss -K needs a kernel with INET_DIAG_DESTROY)")?;
        }
        Ok(())
    }

    fn set(
        &mut self,
        a: &Jurisdiction,
        b: &Jurisdiction,
        conditions: Conditions,
    ) -> anyhow::Result<()> {
        conditions.validate()?;
        if a == b {
            bail!("a link joins two different members, not {a} and itself");
        }
        let namespace = &self.place(a)?.namespace;
        self.place(b)?;
        if let Some(problem) = unsupported(&conditions, || netem_missing(namespace)) {
            bail!("{problem}");
        }
        let (x, y) = key(a, b);
        self.impaired.retain(|(p, q, _)| (p, q) != (&x, &y));
        let down = conditions.down;
        if !conditions.is_clean() {
            self.impaired.push((x, y, conditions));
        }
        self.enforce(&[a, b])?;
        if down {
            self.reset(a, b)?;
        }
        Ok(())
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        let touched: Vec<Jurisdiction> = self
            .impaired
            .drain(..)
            .flat_map(|(a, b, _)| [a, b])
            .collect();
        let touched: Vec<&Jurisdiction> = touched.iter().collect();
        self.enforce(&touched)
    }

    /// Carries out a link command, as the proxies' link layer does.
    pub fn apply(&mut self, command: Control) -> ControlAnswer {
        let done = match command {
            Control::Set { a, b, conditions } => self.set(&a, &b, conditions),
            Control::Reset { a, b } => self.reset(&a, &b),
            Control::Heal => self.heal(),
            Control::Show => Ok(()),
        };
        ControlAnswer {
            error: done.err().map(|e| format!("{e:#}")),
            impaired: self.impaired.clone(),
        }
    }

    /// The packets the rules of `j`'s namespace dropped or refused so far, from their counters.
    pub fn dropped(&self, j: &Jurisdiction) -> anyhow::Result<u64> {
        let listing = run_in(
            &self.place(j)?.namespace,
            "nft",
            &["list", "table", "inet", TABLE],
        )?;
        Ok(listing
            .split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(NETNS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not a testnet's namespaces", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(NETNS_FILE), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    /// Removes every namespace (their veths go with them) and the bridge; what is already gone
    /// is passed over. Returns how many namespaces it removed.
    pub fn teardown(&self) -> usize {
        let mut removed = 0;
        for place in self.members.values() {
            if run("ip", &["netns", "del", &place.namespace]).is_ok() {
                removed += 1;
            }
            let _ = run("ip", &["link", "del", &place.veth]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Ipv4Addr {
        Ipv4Addr::new(10, 233, 7, 11)
    }

    #[test]
    fn a_clean_link_has_no_rule() {
        assert!(rules(addr(), &Conditions::default()).is_empty());
    }

    #[test]
    fn loss_drops_outgoing_packets_at_that_share() {
        let r = rules(
            addr(),
            &Conditions {
                loss: 0.3,
                ..Conditions::default()
            },
        );
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("out ip daddr 10.233.7.11 numgen random mod 10000 < 3000"));
        assert!(r[0].ends_with("drop"));
    }

    #[test]
    fn a_blackhole_drops_both_ways_and_resets_nothing() {
        let r = rules(
            addr(),
            &Conditions {
                blackhole: true,
                loss: 0.1,
                ..Conditions::default()
            },
        );
        assert_eq!(r.len(), 2);
        assert!(
            r.iter()
                .all(|r| r.ends_with("drop") && !r.contains("reset"))
        );
        assert!(r[0].contains("out ip daddr") && r[1].contains("in ip saddr"));
    }

    #[test]
    fn a_cut_link_answers_tcp_with_resets_both_ways() {
        let r = rules(
            addr(),
            &Conditions {
                down: true,
                ..Conditions::default()
            },
        );
        assert_eq!(
            r.iter()
                .filter(|r| r.contains("reject with tcp reset"))
                .count(),
            2
        );
    }

    #[test]
    fn delay_is_refused_with_the_reason() {
        let delayed = Conditions {
            delay_ms: 200,
            ..Conditions::default()
        };
        let why = unsupported(&delayed, || Some("Specified qdisc kind is unknown".into())).unwrap();
        assert!(
            why.contains("no netem") && why.contains("--links proxy"),
            "{why}"
        );
        assert!(unsupported(&delayed, || None).is_some());
        let lossy = Conditions {
            loss: 0.1,
            blackhole: true,
            ..Conditions::default()
        };
        assert!(unsupported(&lossy, || panic!("netem is not asked about loss")).is_none());
    }
}
