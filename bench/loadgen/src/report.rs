//! How scenarios report: one JSON object per line on stdout (for the table
//! and the results file) and one sentence per line on stderr (for people
//! watching the run). Also the small number helpers reports share.
use hdrhistogram::Histogram;
use serde_json::{Map, Value};

/// Prints a result: its JSON line on stdout, its human line on stderr.
pub fn emit(record: Map<String, Value>, human: String) {
    println!("{}", Value::Object(record));
    eprintln!("{human}");
}

/// A JSON object from `(key, value)` pairs.
pub fn record<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Merges a serializable struct's fields into `into`.
pub fn merge(into: &mut Map<String, Value>, fields: &impl serde::Serialize) {
    if let Ok(Value::Object(map)) = serde_json::to_value(fields) {
        into.extend(map);
    }
}

/// Rounds for reports: three decimals are more than any of these numbers
/// can claim.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Quantile of a microsecond histogram, in milliseconds (`None` when empty).
pub fn quantile_ms(hist: &Histogram<u64>, q: f64) -> Option<f64> {
    (!hist.is_empty()).then(|| round3(hist.value_at_quantile(q) as f64 / 1000.0))
}

pub fn mib(bytes: u64) -> f64 {
    round3(bytes as f64 / (1024.0 * 1024.0))
}

/// `Some(x)` as a number, `None` as JSON null.
pub fn num(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| Value::from(round3(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_reported_in_milliseconds() {
        let mut hist = crate::clients::new_histogram();
        for us in [1000, 2000, 3000, 4000] {
            hist.record(us).unwrap();
        }
        assert_eq!(quantile_ms(&hist, 0.5), Some(2.0));
        assert_eq!(quantile_ms(&crate::clients::new_histogram(), 0.5), None);
    }
}
