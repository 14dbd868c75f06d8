//! The canonical-form check every signed body goes through, read in place, beside the way it
//! was done before (decode into a value tree, sort every map, encode again, compare), in the
//! same run. `cargo bench -p comity-protocol --bench canonical`.

use ciborium::Value;
use comity_protocol::examples::sample_request;
use comity_protocol::{is_canonical, to_canonical_cbor};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

/// The baseline: the check as a value tree.
fn canonical_by_tree(bytes: &[u8]) -> bool {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            Value::Tag(tag, inner) => Value::Tag(tag, Box::new(sorted(*inner))),
            Value::Map(entries) => {
                let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                    .into_iter()
                    .map(|(k, v)| {
                        let k = sorted(k);
                        let mut key = Vec::new();
                        ciborium::into_writer(&k, &mut key).unwrap();
                        (key, k, sorted(v))
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
            }
            other => other,
        }
    }
    let Ok(value) = ciborium::from_reader::<Value, _>(bytes) else {
        return false;
    };
    let mut again = Vec::new();
    ciborium::into_writer(&sorted(value), &mut again).unwrap();
    again == bytes
}

fn bench(c: &mut Criterion) {
    let request = to_canonical_cbor(&sample_request()).unwrap();
    let mut big = sample_request();
    big.necessity = "x".repeat(60_000);
    let big = to_canonical_cbor(&big).unwrap();
    for (name, bytes) in [
        ("request", &request),
        ("request with a 60 kB statement of necessity", &big),
    ] {
        assert!(is_canonical(bytes) && canonical_by_tree(bytes));
        let mut group =
            c.benchmark_group(format!("canonical check, {name} ({} bytes)", bytes.len()));
        group.bench_function("in place", |b| b.iter(|| is_canonical(black_box(bytes))));
        group.bench_function("value tree (before)", |b| {
            b.iter(|| canonical_by_tree(black_box(bytes)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
