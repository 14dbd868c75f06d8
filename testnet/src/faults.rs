//! Faults a testnet can put on its members and links, the same from the command line
//! (`comity-testnet fault`) and in scenarios: each is applied by [`Bloc::apply`] and recorded
//! with its time in the testnet's event log.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use comity_protocol::Jurisdiction;
use serde::{Deserialize, Serialize};

use crate::Bloc;
use crate::links::{Conditions, Control};

/// A span of time, signed: "200ms", "30s", "5m", "+1h", "-5m".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub i64);

impl Span {
    pub fn millis(self) -> i64 {
        self.0
    }

    /// As a duration, for what cannot be negative (delays, waits).
    pub fn duration(self) -> anyhow::Result<Duration> {
        u64::try_from(self.0)
            .map(Duration::from_millis)
            .map_err(|_| anyhow::anyhow!("{self} is negative; a delay or a wait cannot be"))
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'-') => (-1, &t[1..]),
            Some(b'+') => (1, &t[1..]),
            _ => (1, t),
        };
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, unit) = rest.split_at(split);
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a time like 200ms, 30s, 5m or -1h"))?;
        let scale = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{text:?} needs a unit: ms, s, m, h or d")),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?}: use ms, s, m, h or d"
                ));
            }
        };
        n.checked_mul(scale)
            .map(|ms| Span(sign * ms))
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Span> for String {
    fn from(span: Span) -> String {
        span.to_string()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, ms) = if self.0 < 0 {
            ("-", self.0.unsigned_abs())
        } else {
            ("", self.0 as u64)
        };
        for (unit, scale) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms >= scale && ms % scale == 0 {
                return write!(f, "{sign}{}{unit}", ms / scale);
            }
        }
        write!(f, "{sign}{ms}ms")
    }
}

/// A share: "10%" or "0.1".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Share(pub f64);

impl FromStr for Share {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let value = match t.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => t.parse::<f64>(),
        }
        .map_err(|_| format!("{text:?} is not a share like 10% or 0.1"))?;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("{text:?} is not between 0% and 100%"));
        }
        Ok(Share(value))
    }
}

impl TryFrom<String> for Share {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Share> for String {
    fn from(share: Share) -> String {
        format!("{}%", share.0 * 100.0)
    }
}

/// Bytes per second: "1MiB/s", "500KB/s", "64KiB".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        crate::bench::evidence::parse_size(t.strip_suffix("/s").unwrap_or(t)).map(Rate)
    }
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        format!("{}B/s", rate.0)
    }
}

/// One fault, or the end of one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// A slow, lossy or narrow link between two members (both ways).
    Link {
        a: Jurisdiction,
        b: Jurisdiction,
        #[serde(default)]
        delay: Option<Span>,
        #[serde(default)]
        jitter: Option<Span>,
        #[serde(default)]
        loss: Option<Share>,
        #[serde(default)]
        bandwidth: Option<Rate>,
    },
    /// The link between two members forwards nothing and closes nothing.
    Blackhole { a: Jurisdiction, b: Jurisdiction },
    /// Every link between members of different groups down (reset, refused).
    Partition { groups: Vec<Vec<Jurisdiction>> },
    /// The connections between two members reset once.
    Reset { a: Jurisdiction, b: Jurisdiction },
    /// Every link clean again.
    Heal,
    /// The member's process killed (SIGKILL).
    Kill { member: Jurisdiction },
    /// The member's process stopped if it runs, and started.
    Restart { member: Jurisdiction },
    /// The member's clock moved by `skew` (either way), as a machine whose clock is off.
    Clock { member: Jurisdiction, skew: Span },
    /// The member's small disk filled to the last byte.
    DiskFull { member: Jurisdiction },
    /// The member's small disk given back its space.
    DiskFree { member: Jurisdiction },
    /// The member's small disk slowed to `iops` operations a second (and `bandwidth`) each way.
    SlowDisk {
        member: Jurisdiction,
        #[serde(default = "default_slow_iops")]
        iops: u32,
        #[serde(default)]
        bandwidth: Option<Rate>,
    },
    /// The member's small disk at full speed again.
    FastDisk { member: Jurisdiction },
}

/// A slow disk's operations a second when none are named: a busy spinning disk's.
pub const SLOW_DISK_IOPS: u32 = 20;

fn default_slow_iops() -> u32 {
    SLOW_DISK_IOPS
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Link { a, b, .. } => {
                write!(f, "link {a} {b}: {}", self.conditions().describe())
            }
            Fault::Blackhole { a, b } => write!(f, "blackhole {a} {b}"),
            Fault::Partition { groups } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| g.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(","))
                    .collect();
                write!(f, "partition {}", groups.join(" | "))
            }
            Fault::Reset { a, b } => write!(f, "reset {a} {b}"),
            Fault::Heal => f.write_str("heal"),
            Fault::Kill { member } => write!(f, "kill {member}"),
            Fault::Restart { member } => write!(f, "restart {member}"),
            Fault::Clock { member, skew } => write!(f, "clock {member} skew {skew}"),
            Fault::DiskFull { member } => write!(f, "disk-full {member}"),
            Fault::DiskFree { member } => write!(f, "disk-free {member}"),
            Fault::SlowDisk {
                member,
                iops,
                bandwidth,
            } => {
                write!(f, "slow-disk {member} {iops} IO/s")?;
                match bandwidth {
                    Some(b) => write!(f, " {}", String::from(*b)),
                    None => Ok(()),
                }
            }
            Fault::FastDisk { member } => write!(f, "fast-disk {member}"),
        }
    }
}

impl Fault {
    /// The link conditions a `link` or `blackhole` fault puts in force.
    fn conditions(&self) -> Conditions {
        match self {
            Fault::Link {
                delay,
                jitter,
                loss,
                bandwidth,
                ..
            } => Conditions {
                delay_ms: delay.map_or(0, |d| d.0.max(0) as u64),
                jitter_ms: jitter.map_or(0, |d| d.0.max(0) as u64),
                loss: loss.map_or(0.0, |l| l.0),
                bandwidth: bandwidth.map_or(0, |b| b.0),
                ..Conditions::default()
            },
            Fault::Blackhole { .. } => Conditions {
                blackhole: true,
                ..Conditions::default()
            },
            _ => Conditions::default(),
        }
    }

    /// Parses the groups of `partition FR,DE | IT` (the `|` may be a word of its own or not).
    pub fn partition(words: &[String]) -> anyhow::Result<Fault> {
        let groups: Vec<Vec<Jurisdiction>> = words
            .join(" ")
            .split(['|', ' '])
            .filter(|g| !g.trim().is_empty())
            .map(|g| {
                g.split(',')
                    .filter(|j| !j.is_empty())
                    .map(|j| j.parse().map_err(|e| anyhow::anyhow!("{j:?}: {e}")))
                    .collect::<anyhow::Result<Vec<Jurisdiction>>>()
            })
            .collect::<anyhow::Result<_>>()?;
        if groups.len() < 2 {
            bail!("a partition needs at least two groups, e.g. `partition FR,DE '|' IT`");
        }
        Ok(Fault::Partition { groups })
    }
}

impl Bloc {
    /// Applies `fault` and records it in the event log.
    pub async fn apply(&mut self, fault: &Fault) -> anyhow::Result<()> {
        for j in fault.members() {
            if !self.nodes.contains_key(j) {
                bail!("{j} is not a member of this testnet");
            }
        }
        match fault {
            Fault::Link { a, b, .. } | Fault::Blackhole { a, b } => {
                self.control_links(Control::Set {
                    a: a.clone(),
                    b: b.clone(),
                    conditions: fault.conditions(),
                })
                .await?;
            }
            Fault::Partition { groups } => {
                let down = Conditions {
                    down: true,
                    ..Conditions::default()
                };
                for (i, left) in groups.iter().enumerate() {
                    for right in &groups[i + 1..] {
                        for a in left {
                            for b in right {
                                self.control_links(Control::Set {
                                    a: a.clone(),
                                    b: b.clone(),
                                    conditions: down.clone(),
                                })
                                .await?;
                            }
                        }
                    }
                }
            }
            Fault::Reset { a, b } => {
                self.control_links(Control::Reset {
                    a: a.clone(),
                    b: b.clone(),
                })
                .await?;
            }
            Fault::Heal => {
                self.control_links(Control::Heal).await?;
            }
            Fault::Kill { member } => self.kill(member.as_str())?,
            Fault::Restart { member } => {
                self.stop(member.as_str())?;
                self.start(member.as_str())?;
                self.wait_up(member.as_str(), Duration::from_secs(30))
                    .await?;
            }
            Fault::Clock { member, skew } => {
                self.client(member.as_str())
                    .skew_clock(skew.millis() / 1000)
                    .await
                    .with_context(|| format!("moving {member}'s clock"))?;
            }
            Fault::DiskFull { member } => self.fill_disk(member.as_str())?,
            Fault::DiskFree { member } => self.free_disk(member.as_str())?,
            Fault::SlowDisk {
                member,
                iops,
                bandwidth,
            } => self.slow_disk(member.as_str(), *iops, bandwidth.map(|b| b.0))?,
            Fault::FastDisk { member } => self.fast_disk(member.as_str())?,
        }
        self.record_event(&format!("fault {fault}"))
    }
}

impl Fault {
    fn members(&self) -> Vec<&Jurisdiction> {
        match self {
            Fault::Link { a, b, .. } | Fault::Blackhole { a, b } | Fault::Reset { a, b } => {
                vec![a, b]
            }
            Fault::Partition { groups } => groups.iter().flatten().collect(),
            Fault::Heal => Vec::new(),
            Fault::Kill { member }
            | Fault::Restart { member }
            | Fault::Clock { member, .. }
            | Fault::DiskFull { member }
            | Fault::DiskFree { member }
            | Fault::SlowDisk { member, .. }
            | Fault::FastDisk { member } => vec![member],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_write_them_and_print_back() {
        for (text, ms) in [
            ("200ms", 200),
            ("30s", 30_000),
            ("5m", 300_000),
            ("+1h", 3_600_000),
            ("-5m", -300_000),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.millis(), ms, "{text}");
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
        }
        assert!("5".parse::<Span>().unwrap_err().contains("needs a unit"));
        assert!("5y".parse::<Span>().unwrap_err().contains("unknown unit"));
        assert!("-5m".parse::<Span>().unwrap().duration().is_err());
    }

    #[test]
    fn shares_and_rates_are_checked() {
        assert_eq!("10%".parse::<Share>().unwrap().0, 0.1);
        assert_eq!("0.3".parse::<Share>().unwrap().0, 0.3);
        assert!("130%".parse::<Share>().is_err());
        assert_eq!("1MiB/s".parse::<Rate>().unwrap().0, 1 << 20);
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn a_partition_reads_its_groups_however_the_bar_is_written() {
        let j = |s: &str| -> Jurisdiction { s.parse().unwrap() };
        let expected = Fault::Partition {
            groups: vec![vec![j("FR"), j("DE")], vec![j("IT")]],
        };
        for words in [
            vec!["FR,DE", "|", "IT"],
            vec!["FR,DE|IT"],
            vec!["FR,DE", "IT"],
        ] {
            let words: Vec<String> = words.into_iter().map(String::from).collect();
            assert_eq!(Fault::partition(&words).unwrap(), expected);
        }
        assert!(Fault::partition(&["FR,DE".to_owned()]).is_err());
        assert_eq!(expected.to_string(), "partition FR,DE | IT");
    }

    #[test]
    fn faults_read_from_scenario_toml() {
        let fault: Fault = toml::from_str(
            "fault = \"link\"\na = \"FR\"\nb = \"DE\"\ndelay = \"200ms\"\nloss = \"10%\"\n",
        )
        .unwrap();
        assert_eq!(fault.to_string(), "link FR DE: delay 200 ms, loss 10 %");
        let err =
            toml::from_str::<Fault>("fault = \"link\"\na = \"FR\"\nb = \"DE\"\ndelay = \"soon\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("not a time"), "{err}");
        let slow: Fault = toml::from_str("fault = \"slow-disk\"\nmember = \"DE\"\n").unwrap();
        assert_eq!(slow.to_string(), "slow-disk DE 20 IO/s");
        let narrow: Fault = toml::from_str(
            "fault = \"slow-disk\"\nmember = \"DE\"\niops = 5\nbandwidth = \"1MiB/s\"\n",
        )
        .unwrap();
        assert_eq!(narrow.to_string(), "slow-disk DE 5 IO/s 1048576B/s");
    }
}
