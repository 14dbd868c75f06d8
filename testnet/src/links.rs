//! The testnet's link layer: a userspace TCP proxy for every ordered pair of members, in the
//! spirit of Toxiproxy, that needs no root and no kernel module. Each member reaches each other
//! member only through its proxy (the node's `[network] routes`), so what a link does to the
//! bytes it carries is what the members see:
//!
//! - **delay** and **jitter**, added to each direction (a round trip pays them twice);
//! - **loss** as TCP feels it: a lost segment arrives after a retransmission timeout (200 ms,
//!   doubling while it is lost again), the stream stays whole — on a kernel with `netem`, real
//!   packet loss is what `--netns` adds;
//! - **bandwidth**, each way;
//! - a **blackhole**: nothing is forwarded and nothing is closed, as when a route silently
//!   drops every packet;
//! - **down** (a partition): connections are reset and new ones refused;
//! - a **reset** of the connections in place, once.
//!
//! Conditions are per pair of members, both directions and both proxies of the pair. The
//! proxies listen on loopback only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use comity_protocol::Jurisdiction;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The first retransmission timeout of a segment lost on a link (Linux's minimum RTO).
const RETRANSMIT: Duration = Duration::from_millis(200);
/// Bytes read from one side at a time: the granularity of delay, loss and pacing.
const SEGMENT: usize = 16 * 1024;

/// What one link does to what crosses it. The default is a clean link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// Delay added to each direction, in milliseconds.
    pub delay_ms: u64,
    /// Up to this much more or less than `delay_ms`, at random per segment.
    pub jitter_ms: u64,
    /// Share of segments lost (0.0–1.0), each then delivered after TCP's retransmission.
    pub loss: f64,
    /// Bytes per second each way; 0 is unlimited.
    pub bandwidth: u64,
    /// Forwards nothing and closes nothing.
    pub blackhole: bool,
    /// Partitioned: connections reset, new ones refused.
    pub down: bool,
}

impl Conditions {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.loss) {
            bail!(
                "loss must be a share between 0% and 100%, not {}",
                self.loss * 100.0
            );
        }
        if self.jitter_ms > self.delay_ms {
            bail!(
                "jitter ({} ms) must not exceed the delay ({} ms): a segment cannot arrive before it is sent",
                self.jitter_ms,
                self.delay_ms
            );
        }
        Ok(())
    }

    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// In words, for tables and the event log: "delay 200 ms ± 20, loss 10 %".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.down {
            parts.push("down".to_owned());
        }
        if self.blackhole {
            parts.push("blackhole".to_owned());
        }
        if self.delay_ms > 0 {
            parts.push(match self.jitter_ms {
                0 => format!("delay {} ms", self.delay_ms),
                j => format!("delay {} ms ± {j}", self.delay_ms),
            });
        }
        if self.loss > 0.0 {
            parts.push(format!("loss {} %", self.loss * 100.0));
        }
        if self.bandwidth > 0 {
            parts.push(format!("bandwidth {} B/s", self.bandwidth));
        }
        if parts.is_empty() {
            "clean".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The delay one segment pays: the link's delay with its jitter, and retransmissions for
    /// as long as it is lost.
    fn segment_delay(&self, rng: &mut impl Rng) -> Duration {
        let mut delay = self.delay_ms as i64;
        if self.jitter_ms > 0 {
            let j = self.jitter_ms as i64;
            delay += rng.gen_range(-j..=j);
        }
        let mut total = Duration::from_millis(delay.max(0) as u64);
        let mut rto = RETRANSMIT;
        while self.loss > 0.0 && rng.gen_bool(self.loss.min(0.99)) {
            total += rto;
            rto = (rto * 2).min(Duration::from_secs(60));
        }
        total
    }
}

/// One proxy: `from` reaches `to` at 127.0.0.1:`port`, which forwards to `target`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub from: Jurisdiction,
    pub to: Jurisdiction,
    pub port: u16,
    pub target: SocketAddr,
}

/// The pair's state, shared by its two proxies and their connections.
struct Pair {
    conditions: watch::Sender<Conditions>,
    /// Bumped to reset every connection of the pair.
    resets: watch::Sender<u64>,
}

/// The unordered key of a pair.
fn key(a: &Jurisdiction, b: &Jurisdiction) -> (Jurisdiction, Jurisdiction) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// The running proxies. Dropping it stops them and closes their connections.
pub struct Links {
    pairs: BTreeMap<(Jurisdiction, Jurisdiction), Arc<Pair>>,
    routes: Vec<Route>,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Links {
    /// Listens on every route's port and starts forwarding.
    pub async fn start(routes: Vec<Route>) -> anyhow::Result<Self> {
        let mut pairs = BTreeMap::new();
        let mut tasks = JoinSet::new();
        for route in &routes {
            let pair = pairs
                .entry(key(&route.from, &route.to))
                .or_insert_with(|| {
                    Arc::new(Pair {
                        conditions: watch::Sender::new(Conditions::default()),
                        resets: watch::Sender::new(0),
                    })
                })
                .clone();
            let listener = TcpListener::bind(("127.0.0.1", route.port))
                .await
                .with_context(|| {
                    format!(
                        "the link {} → {} cannot listen on 127.0.0.1:{}",
                        route.from, route.to, route.port
                    )
                })?;
            tasks.spawn(serve(listener, route.target, pair));
        }
        Ok(Self {
            pairs,
            routes,
            _tasks: tasks,
        })
    }

    fn pair(&self, a: &Jurisdiction, b: &Jurisdiction) -> anyhow::Result<&Arc<Pair>> {
        self.pairs
            .get(&key(a, b))
            .with_context(|| format!("no link between {a} and {b} in this testnet"))
    }

    /// Puts `conditions` in force on the link between `a` and `b`, both ways, at once on the
    /// connections it carries. A partition (`down`) also resets them.
    pub fn set(
        &self,
        a: &Jurisdiction,
        b: &Jurisdiction,
        conditions: Conditions,
    ) -> anyhow::Result<()> {
        conditions.validate()?;
        let pair = self.pair(a, b)?;
        let down = conditions.down;
        pair.conditions.send_replace(conditions);
        if down {
            pair.resets.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Resets every connection between `a` and `b` (each side sees a TCP reset).
    pub fn reset(&self, a: &Jurisdiction, b: &Jurisdiction) -> anyhow::Result<()> {
        self.pair(a, b)?.resets.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Every link clean again.
    pub fn heal(&self) {
        for pair in self.pairs.values() {
            pair.conditions.send_replace(Conditions::default());
        }
    }

    /// The links that are not clean, as (a, b, conditions).
    pub fn impaired(&self) -> Vec<(Jurisdiction, Jurisdiction, Conditions)> {
        self.pairs
            .iter()
            .map(|((a, b), p)| (a.clone(), b.clone(), p.conditions.borrow().clone()))
            .filter(|(_, _, c)| !c.is_clean())
            .collect()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

async fn serve(listener: TcpListener, target: SocketAddr, pair: Arc<Pair>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let pair = pair.clone();
        tokio::spawn(async move {
            let _ = carry(inbound, target, &pair).await;
        });
    }
}

/// One connection across the link, from its accept to its end or its reset.
async fn carry(mut inbound: TcpStream, target: SocketAddr, pair: &Pair) -> std::io::Result<()> {
    let mut conditions = pair.conditions.subscribe();
    let mut resets = pair.resets.subscribe();
    resets.mark_unchanged();
    let _ = inbound.set_nodelay(true);
    if conditions.borrow().down {
        return reset(&inbound);
    }
    // A blackholed link takes the connection and never answers; the other side is reached
    // once the link carries again.
    let outbound = tokio::select! {
        open = async {
            wait_open(&mut conditions).await;
            TcpStream::connect(target).await
        } => open?,
        _ = resets.changed() => return reset(&inbound),
    };
    let mut outbound = outbound;
    let _ = outbound.set_nodelay(true);
    {
        let (ar, aw) = inbound.split();
        let (br, bw) = outbound.split();
        let there = pump(ar, bw, pair.conditions.subscribe());
        let back = pump(br, aw, pair.conditions.subscribe());
        tokio::select! {
            _ = async { tokio::join!(there, back) } => return Ok(()),
            _ = resets.changed() => {}
        }
    }
    // Reset: both sides see an RST, not a clean close.
    reset(&inbound)?;
    reset(&outbound)
}

/// Makes the socket's close an RST. A zero linger never blocks on drop (the deprecation is
/// about a non-zero one).
#[allow(deprecated)]
fn reset(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}

/// Until the link no longer blackholes (a link that is down resets its connections instead).
async fn wait_open(conditions: &mut watch::Receiver<Conditions>) {
    while conditions.borrow_and_update().blackhole {
        if conditions.changed().await.is_err() {
            return;
        }
    }
}

/// One direction: reads segments, delays, paces and loses them as the link's conditions say,
/// and writes them in order.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    conditions: watch::Receiver<Conditions>,
) {
    // Bounded: a slow or blackholed link holds the sender back, as TCP's window would.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let mut read_conditions = conditions.clone();
    let reader = async move {
        let mut buf = vec![0u8; SEGMENT];
        let mut last = Instant::now();
        let mut paced = Instant::now();
        loop {
            wait_open(&mut read_conditions).await;
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            let c = read_conditions.borrow().clone();
            if c.bandwidth > 0 {
                paced = paced.max(now) + Duration::from_secs_f64(n as f64 / c.bandwidth as f64);
                tokio::time::sleep_until(paced).await;
            }
            // In order, as TCP delivers: never before what was read earlier.
            let at = (Instant::now() + c.segment_delay(&mut rand::thread_rng())).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let mut write_conditions = conditions;
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            wait_open(&mut write_conditions).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Routes for every ordered pair of `members` (jurisdiction → its real listen address), each
/// on a free loopback port.
pub fn plan(members: &BTreeMap<Jurisdiction, SocketAddr>) -> Vec<Route> {
    let mut routes = Vec::new();
    for from in members.keys() {
        for (to, target) in members {
            if from != to {
                routes.push(Route {
                    from: from.clone(),
                    to: to.clone(),
                    port: crate::free_port(),
                    target: *target,
                });
            }
        }
    }
    routes
}

/// What the control socket of a links process is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Control {
    Set {
        a: Jurisdiction,
        b: Jurisdiction,
        conditions: Conditions,
    },
    Reset {
        a: Jurisdiction,
        b: Jurisdiction,
    },
    Heal,
    Show,
}

/// Its answer: the impaired links after the command, or what went wrong.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub impaired: Vec<(Jurisdiction, Jurisdiction, Conditions)>,
}

impl Links {
    pub fn apply(&self, command: Control) -> ControlAnswer {
        let done = match command {
            Control::Set { a, b, conditions } => self.set(&a, &b, conditions),
            Control::Reset { a, b } => self.reset(&a, &b),
            Control::Heal => {
                self.heal();
                Ok(())
            }
            Control::Show => Ok(()),
        };
        ControlAnswer {
            error: done.err().map(|e| format!("{e:#}")),
            impaired: self.impaired(),
        }
    }

    /// Serves control commands on a Unix socket (one JSON object per line each way) until the
    /// process ends. The socket is made mode 0600 in the testnet's directory.
    pub async fn serve_control(self: Arc<Self>, socket: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        use tokio::io::AsyncBufReadExt;
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        loop {
            let (stream, _) = listener.accept().await?;
            let links = self.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = match serde_json::from_str::<Control>(&line) {
                        Ok(command) => links.apply(command),
                        Err(e) => ControlAnswer {
                            error: Some(format!("not a link command: {e}")),
                            impaired: Vec::new(),
                        },
                    };
                    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
                    out.push(b'\n');
                    if write.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
}

/// Sends one command to the links process of a testnet and returns its answer.
pub async fn control(socket: &Path, command: &Control) -> anyhow::Result<ControlAnswer> {
    use tokio::io::AsyncBufReadExt;
    let stream = tokio::net::UnixStream::connect(socket).await.with_context(|| {
        format!(
            "no link layer answers at {} (was the testnet started with `up --links proxy` or `--links netns`, and is it up?)",
            socket.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(command)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let answer = tokio::io::BufReader::new(read)
        .lines()
        .next_line()
        .await?
        .context("the link layer closed without answering")?;
    let answer: ControlAnswer = serde_json::from_str(&answer)?;
    if let Some(e) = &answer.error {
        bail!("{e}");
    }
    Ok(answer)
}

/// The pid file of a testnet's links process.
const PID_FILE: &str = "links.pid";

/// Starts `comity-testnet links --dir DIR` in the background for the testnet in `dir` (its
/// routes in `links.json`) and waits until it answers on its control socket.
pub async fn spawn_testnet(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("links.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("links")
        .arg("--dir")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the link layer")?;
    std::fs::write(dir.join(PID_FILE), child.id().to_string())?;
    let socket = dir.join(crate::LINKS_SOCKET);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match control(&socket, &Control::Show).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!(
                    "the link layer did not start; see {}",
                    dir.join("links.log").display()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs the link layer of the testnet in `dir` until SIGTERM or SIGINT.
pub async fn serve_testnet(dir: &Path) -> anyhow::Result<()> {
    let routes: Vec<Route> = serde_json::from_str(
        &std::fs::read_to_string(dir.join(crate::LINKS_FILE))
            .with_context(|| format!("no link routes in {}", dir.display()))?,
    )?;
    // Two descriptors a connection, and a listener a route: a 50-member bloc needs
    // thousands.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let links = Arc::new(Links::start(routes).await?);
    let socket = dir.join(crate::LINKS_SOCKET);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let served = tokio::select! {
        served = links.serve_control(&socket) => served,
        _ = terminate.recv() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    served
}

/// Stops the links process of the testnet in `dir`; whether it was running.
pub fn stop_testnet(dir: &Path) -> anyhow::Result<bool> {
    let file = dir.join(PID_FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(false);
    };
    let pid: u32 = text.trim().parse().context("links.pid holds no pid")?;
    let running = crate::is_alive(pid);
    if running {
        crate::terminate(pid, &mut || !crate::is_alive(pid));
    }
    std::fs::remove_file(&file)?;
    let _ = std::fs::remove_file(dir.join(crate::LINKS_SOCKET));
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jurisdiction {
        s.parse().unwrap()
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn through(target: SocketAddr) -> (Links, u16) {
        let port = crate::free_port();
        let links = Links::start(vec![Route {
            from: j("FR"),
            to: j("DE"),
            port,
            target,
        }])
        .await
        .unwrap();
        (links, port)
    }

    async fn round_trip(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(bytes).await?;
        let mut back = vec![0; bytes.len()];
        s.read_exact(&mut back).await?;
        Ok(back)
    }

    #[tokio::test]
    async fn a_clean_link_carries_bytes_whole_and_a_delayed_one_pays_its_delay_each_way() {
        let (links, port) = through(echo_server().await).await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(&mut s, &data).await.unwrap(), data);

        let delay = Conditions {
            delay_ms: 100,
            ..Conditions::default()
        };
        links.set(&j("DE"), &j("FR"), delay.clone()).unwrap();
        let started = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").await.unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(links.impaired(), vec![(j("DE"), j("FR"), delay)]);
    }

    #[tokio::test]
    async fn a_blackhole_forwards_nothing_closes_nothing_and_carries_again_when_lifted() {
        let (links, port) = through(echo_server().await).await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(round_trip(&mut s, b"a").await.unwrap(), b"a");
        links
            .set(
                &j("FR"),
                &j("DE"),
                Conditions {
                    blackhole: true,
                    ..Conditions::default()
                },
            )
            .unwrap();
        s.write_all(b"b").await.unwrap();
        let mut one = [0u8; 1];
        let silent = tokio::time::timeout(Duration::from_millis(500), s.read(&mut one)).await;
        assert!(silent.is_err(), "a blackhole answered: {silent:?}");
        links.heal();
        let back = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut one)).await;
        assert!(matches!(back, Ok(Ok(1))), "{back:?}");
        assert_eq!(&one, b"b");
    }

    #[tokio::test]
    async fn a_partition_resets_connections_and_refuses_new_ones_until_healed() {
        let (links, port) = through(echo_server().await).await;
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(round_trip(&mut s, b"a").await.unwrap(), b"a");
        links
            .set(
                &j("FR"),
                &j("DE"),
                Conditions {
                    down: true,
                    ..Conditions::default()
                },
            )
            .unwrap();
        let mut one = [0u8; 1];
        let cut = tokio::time::timeout(Duration::from_secs(5), s.read(&mut one)).await;
        assert!(matches!(cut, Ok(Ok(0)) | Ok(Err(_))), "{cut:?}");
        let mut again = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert!(round_trip(&mut again, b"x").await.is_err());
        links.heal();
        let mut healed = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(round_trip(&mut healed, b"y").await.unwrap(), b"y");
    }

    #[test]
    fn loss_costs_retransmissions_and_jitter_stays_within_its_bounds() {
        let mut rng = rand::thread_rng();
        let lossy = Conditions {
            delay_ms: 50,
            jitter_ms: 10,
            loss: 0.3,
            ..Conditions::default()
        };
        let delays: Vec<Duration> = (0..2000).map(|_| lossy.segment_delay(&mut rng)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(40)));
        let late = delays
            .iter()
            .filter(|d| **d >= Duration::from_millis(240))
            .count();
        // About 30 % lost at least once.
        assert!((400..800).contains(&late), "{late} of 2000 retransmitted");
        assert!(
            Conditions {
                loss: 1.5,
                ..Conditions::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Conditions {
                delay_ms: 5,
                jitter_ms: 10,
                ..Conditions::default()
            }
            .validate()
            .is_err()
        );
    }
}
