//! The node's Prometheus instruments: counters and histograms kept as things happen, in one
//! registry for the process (a process runs one node).
//!
//! What is read from the node's state at each scrape (cases by state, outboxes, members,
//! budgets, the audit log, the bloc configuration) is added by `admin::metrics` through a
//! collector, so that nothing here is polled when nobody scrapes. Labels are jurisdiction
//! codes, kinds and outcomes: never a person, a selector or a case.

use std::sync::{Arc, LazyLock, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// One exchange's labels: with which member, which way, over which protocol, what was asked
/// and how it ended (`receipt`, `events`, `rejected:invalid`, `failed:timeout`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    pub member: String,
    pub direction: &'static str,
    pub protocol: &'static str,
    pub kind: String,
    pub outcome: String,
}

/// The labels of an exchange's duration and sizes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    pub direction: &'static str,
    pub protocol: &'static str,
    pub kind: String,
}

/// Every instrument of the node, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    pub exchanges: Family<ExchangeLabels, Counter>,
    pub exchange_seconds: Family<FlowLabels, Histogram>,
    pub request_bytes: Family<FlowLabels, Counter>,
    pub response_bytes: Family<FlowLabels, Counter>,
    pub opmon_dropped: Counter,
    /// Exchange records kept (set by the writer as it adds and deletes them).
    pub opmon_records: prometheus_client::metrics::gauge::Gauge,
    pub store_commit_seconds: Histogram,
    pub store_group_size: Histogram,
    pub store_commit_failures: Counter,
    /// libp2p's own: connections, dials, identify, gossipsub, kademlia, ping.
    pub p2p: libp2p::metrics::Metrics,
    /// What the scrape in progress reads of the node's state (see [`encode_with`]).
    scraped: Arc<Mutex<Option<Box<dyn Collector>>>>,
    /// Scrapes take turns, each with its own reading.
    scraping: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Hands the scrape to the collector of the scrape in progress.
#[derive(Debug)]
struct Scraped(Arc<Mutex<Option<Box<dyn Collector>>>>);

impl Collector for Scraped {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(collector) => collector.encode(encoder),
            None => Ok(()),
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's instruments.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The text of every metric in the OpenMetrics format, with `collector` reading the node's
/// state for this scrape.
pub fn encode_with(collector: Box<dyn Collector>) -> Result<String, std::fmt::Error> {
    let metrics = get();
    let _turn = metrics.scraping.lock().unwrap_or_else(|p| p.into_inner());
    *metrics.scraped.lock().unwrap_or_else(|p| p.into_inner()) = Some(collector);
    let mut text = String::new();
    let result = prometheus_client::encoding::text::encode(&mut text, &metrics.registry);
    *metrics.scraped.lock().unwrap_or_else(|p| p.into_inner()) = None;
    result.map(|()| text)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let ours = registry.sub_registry_with_prefix("comity");
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        ours.register(
            "exchanges",
            "Exchanges with members, by member, direction, protocol, kind and outcome",
            exchanges.clone(),
        );
        let exchange_seconds = Family::<FlowLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about a minute.
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        ours.register_with_unit(
            "exchange_duration",
            "Time from a request sent (or received) to its answer received (or sent)",
            Unit::Seconds,
            exchange_seconds.clone(),
        );
        let request_bytes = Family::<FlowLabels, Counter>::default();
        ours.register_with_unit(
            "exchange_request",
            "Bytes of requests sent and received",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let response_bytes = Family::<FlowLabels, Counter>::default();
        ours.register_with_unit(
            "exchange_response",
            "Bytes of answers sent and received",
            Unit::Bytes,
            response_bytes.clone(),
        );
        let opmon_dropped = Counter::default();
        ours.register(
            "opmon_dropped",
            "Exchange records not kept because the operational monitoring queue was full",
            opmon_dropped.clone(),
        );
        let opmon_records = prometheus_client::metrics::gauge::Gauge::default();
        ours.register(
            "opmon_records",
            "Exchange records kept for `comity opmon`",
            opmon_records.clone(),
        );
        // 0.1 ms to about 3 s.
        let store_commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        ours.register_with_unit(
            "store_commit_duration",
            "Time of one synced group commit of the store",
            Unit::Seconds,
            store_commit_seconds.clone(),
        );
        let store_group_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        ours.register(
            "store_commit_group_size",
            "Writes merged into one synced group commit",
            store_group_size.clone(),
        );
        let store_commit_failures = Counter::default();
        ours.register(
            "store_commit_failures",
            "Group commits the store could not write (nothing of them was saved)",
            store_commit_failures.clone(),
        );
        let scraped = Arc::new(Mutex::new(None));
        ours.register_collector(Box::new(Scraped(scraped.clone())));
        let p2p = libp2p::metrics::Metrics::new(&mut registry);
        Self {
            registry,
            exchanges,
            exchange_seconds,
            request_bytes,
            response_bytes,
            opmon_dropped,
            opmon_records,
            store_commit_seconds,
            store_group_size,
            store_commit_failures,
            p2p,
            scraped,
            scraping: Mutex::new(()),
        }
    }
}
