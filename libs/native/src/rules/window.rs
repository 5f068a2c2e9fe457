//! Sliding windows: the time-ordered samples of one rule and group, and their aggregates.
//!
//! A slot keeps `(time, value)` samples for its window plus its baseline, with
//! running sums beside them, so that count, rate, sum and average over any
//! span cost two binary searches whatever the number of samples (a spike rule
//! grouped by model sees every event of that model for an hour). Min, max and
//! percentile look at the values in the span.

use crate::Error;

/// Per rule and group; beyond it the oldest samples go (the window is then approximate).
pub const MAX_SAMPLES: usize = 10_000;
/// Running sums start over once the expired samples behind them add up to this.
const REBASE: f64 = 1_099_511_627_776.0; // 2**40

/// Samples of one slot in time order, with running sums for span aggregates.
#[derive(Clone, Default, Debug)]
pub struct Series {
    times: Vec<f64>,
    values: Vec<f64>,
    sums: Vec<f64>,
}

/// Index of the first element greater than `x` (Python's `bisect_right`).
fn bisect_right(v: &[f64], x: f64) -> usize {
    v.partition_point(|&t| t <= x)
}

impl Series {
    /// A series holding the given samples (in any order).
    pub fn new(mut samples: Vec<(f64, f64)>) -> Self {
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let mut s = Series {
            times: samples.iter().map(|p| p.0).collect(),
            values: samples.iter().map(|p| p.1).collect(),
            sums: Vec::with_capacity(samples.len()),
        };
        s.resum(0);
        s
    }

    pub fn samples(&self) -> Vec<(f64, f64)> {
        self.times
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    fn resum(&mut self, start: usize) {
        self.sums.truncate(start);
        let mut total = self.sums.last().copied().unwrap_or(0.0);
        for &v in &self.values[start..] {
            total += v;
            self.sums.push(total);
        }
    }

    /// Adds a sample and drops those older than `horizon` before the newest one.
    ///
    /// Samples come in time order but for concurrent batches' interleaving, so the
    /// newest and oldest are looked at before searching: two binary searches a
    /// sample over series of thousands took 8% of the alerting engine's main thread.
    pub fn add(&mut self, time: f64, value: f64, horizon: f64) {
        let in_order = self.times.last().is_none_or(|&last| last <= time);
        let i = if in_order {
            self.times.len()
        } else {
            bisect_right(&self.times, time)
        };
        if i == self.times.len() {
            self.times.push(time);
            self.values.push(value);
            self.sums
                .push(self.sums.last().copied().unwrap_or(0.0) + value);
        } else {
            // Out of order (rare: receive times of concurrent batches interleave).
            self.times.insert(i, time);
            self.values.insert(i, value);
            self.resum(i);
        }
        let newest = *self.times.last().expect("just added");
        let expired = if self.times[0] > newest - horizon {
            0
        } else {
            bisect_right(&self.times, newest - horizon)
        };
        let drop = expired.max(self.times.len().saturating_sub(MAX_SAMPLES));
        if drop > 0 {
            self.times.drain(..drop);
            self.values.drain(..drop);
            self.sums.drain(..drop);
        }
        if !self.sums.is_empty() && (self.sums[0] - self.values[0]).abs() > REBASE {
            self.sums.clear();
            self.resum(0);
        }
    }

    fn after(&self, time: f64) -> usize {
        bisect_right(&self.times, time)
    }

    /// Sum of the values at indexes `lo .. hi - 1`.
    fn total(&self, lo: usize, hi: usize) -> f64 {
        if hi <= lo {
            return 0.0;
        }
        let before = if lo > 0 {
            self.sums[lo - 1]
        } else {
            self.sums[0] - self.values[0]
        };
        self.sums[hi - 1] - before
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Aggregate {
    Count,
    Rate,
    Sum,
    Avg,
    Min,
    Max,
    Percentile,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Compare {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Compare {
    pub fn parse(op: &str) -> Result<Self, Error> {
        Ok(match op {
            "gt" => Compare::Gt,
            "gte" => Compare::Gte,
            "lt" => Compare::Lt,
            "lte" => Compare::Lte,
            _ => return Err(Error::new(format!("unknown comparison {op:?}"))),
        })
    }

    /// Whether `a` compared with `b` as `ordering` (`a.cmp(b)`) satisfies it.
    pub fn admits(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            Compare::Gt => ordering == Greater,
            Compare::Gte => ordering != Less,
            Compare::Lt => ordering == Less,
            Compare::Lte => ordering != Greater,
        }
    }

    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Compare::Gt => a > b,
            Compare::Gte => a >= b,
            Compare::Lt => a < b,
            Compare::Lte => a <= b,
        }
    }
}

/// Aggregate of matching events per group over a sliding window (rules.Window).
#[derive(Clone, Debug)]
pub struct Window {
    pub seconds: f64,
    pub aggregate: Aggregate,
    pub percentile: f64,
    pub op: Compare,
    pub threshold: f64,
    pub baseline_seconds: f64,
    pub factor: f64,
}

impl Window {
    pub fn parse_aggregate(name: &str) -> Result<Aggregate, Error> {
        Ok(match name {
            "count" => Aggregate::Count,
            "rate" => Aggregate::Rate,
            "sum" => Aggregate::Sum,
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "percentile" => Aggregate::Percentile,
            _ => return Err(Error::new(format!("unknown aggregate {name:?}"))),
        })
    }

    /// How far back samples must be kept.
    pub fn horizon(&self) -> f64 {
        self.seconds + self.baseline_seconds
    }

    /// The aggregate over samples `lo .. hi - 1` spanning `seconds`.
    fn aggregate(&self, s: &Series, lo: usize, hi: usize, seconds: f64) -> f64 {
        let n = hi.saturating_sub(lo);
        match self.aggregate {
            Aggregate::Count => return n as f64,
            Aggregate::Rate => return n as f64 / (seconds / 60.0),
            _ if n == 0 => return 0.0,
            Aggregate::Sum => return s.total(lo, hi),
            Aggregate::Avg => return s.total(lo, hi) / n as f64,
            _ => {}
        }
        let values = &s.values[lo..hi];
        match self.aggregate {
            Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            _ => {
                let mut ordered = values.to_vec();
                ordered.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                let rank = ((self.percentile / 100.0 * n as f64).ceil() as i64 - 1).max(0);
                ordered[(rank as usize).min(n - 1)]
            }
        }
    }

    /// Whether the aggregate crosses the threshold (and the baseline factor), and its value.
    ///
    /// The window holds the samples later than `now - duration`; the baseline
    /// those in the `baseline` duration before it. `watched`: the time from which
    /// the series has seen every matching event (the rule's last change, or when
    /// the log began), which tells a quiet baseline from one never looked at.
    pub fn fires(&self, s: &Series, now: f64, watched: f64) -> (bool, f64) {
        let cut = s.after(now - self.seconds);
        let value = self.aggregate(s, cut, s.len(), self.seconds);
        if !self.op.holds(value, self.threshold) {
            return (false, value);
        }
        if self.baseline_seconds <= 0.0 {
            return (true, value);
        }
        let base_start = now - self.seconds - self.baseline_seconds;
        let first_base = s.after(base_start);
        if first_base >= cut {
            // No sample in the baseline. A count, rate or sum was then 0 there, provided
            // the whole baseline was watched and no sample of it went for the cap (a full
            // series may have dropped it): a user idle for an hour who burns 2M tokens
            // in 5 minutes is a spike (it never fired). An average, minimum, maximum or
            // percentile of nothing is no reference, nor is a baseline never watched: a
            // new rule (or a new log) would otherwise fire for every busy group at once.
            let rate = matches!(
                self.aggregate,
                Aggregate::Count | Aggregate::Rate | Aggregate::Sum
            );
            let quiet = rate && watched <= base_start && s.len() < MAX_SAMPLES;
            return (quiet && value > 0.0, value);
        }
        // The part of the baseline the series saw: a rule changed (or a log begun)
        // inside its baseline has samples of that part only, whose count or sum stands
        // for that part's span, not the whole baseline's (a new count spike rule fired
        // for every steadily busy group until a whole baseline had passed). Less than
        // a window of it is no reference.
        let seen = now - self.seconds - watched.max(base_start);
        if seen < self.seconds {
            return (false, value);
        }
        let mut reference = self.aggregate(s, first_base, cut, seen);
        if matches!(self.aggregate, Aggregate::Count | Aggregate::Sum) {
            reference = reference * self.seconds / seen;
        }
        (value > self.factor * reference, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(aggregate: Aggregate, threshold: f64) -> Window {
        Window {
            seconds: 60.0,
            aggregate,
            percentile: 50.0,
            op: Compare::Gt,
            threshold,
            baseline_seconds: 0.0,
            factor: 0.0,
        }
    }

    #[test]
    fn aggregates_cover_only_samples_inside_the_window() {
        let mut s = Series::default();
        for (t, v) in [(0.0, 100.0), (30.0, 5.0), (70.0, 7.0), (80.0, 9.0)] {
            s.add(t, v, 3600.0);
        }
        assert_eq!(
            window(Aggregate::Count, 2.0).fires(&s, 80.0, f64::NEG_INFINITY),
            (true, 3.0)
        );
        assert_eq!(
            window(Aggregate::Sum, 21.0).fires(&s, 80.0, f64::NEG_INFINITY),
            (false, 21.0)
        );
        assert_eq!(
            window(Aggregate::Max, 8.0).fires(&s, 80.0, f64::NEG_INFINITY),
            (true, 9.0)
        );
        assert_eq!(
            window(Aggregate::Min, 4.0).fires(&s, 80.0, f64::NEG_INFINITY),
            (true, 5.0)
        );
        assert_eq!(
            window(Aggregate::Percentile, 6.0).fires(&s, 80.0, f64::NEG_INFINITY),
            (true, 7.0)
        );
    }

    fn spike(aggregate: Aggregate) -> Window {
        Window {
            baseline_seconds: 600.0,
            factor: 4.0,
            ..window(aggregate, 5.0)
        }
    }

    #[test]
    fn an_empty_baseline_is_a_rate_of_zero_once_it_was_watched() {
        let mut s = Series::default();
        for t in 0..10 {
            s.add(1000.0 + f64::from(t), 1.0, 660.0);
        }
        // The baseline is (349, 949]: watched since 349 or earlier, it was quiet.
        for aggregate in [Aggregate::Count, Aggregate::Rate, Aggregate::Sum] {
            assert!(spike(aggregate).fires(&s, 1009.0, 349.0).0, "{aggregate:?}");
            assert!(
                !spike(aggregate).fires(&s, 1009.0, 349.5).0,
                "{aggregate:?}"
            );
        }
        let mut avg = spike(Aggregate::Avg);
        avg.threshold = 0.5;
        assert!(!avg.fires(&s, 1009.0, f64::NEG_INFINITY).0);
        // One sample in the baseline: compared with it once a window of it was watched.
        s.add(500.0, 1.0, 660.0);
        assert!(spike(Aggregate::Count).fires(&s, 1009.0, 349.0).0);
        assert!(spike(Aggregate::Count).fires(&s, 1009.0, 889.0).0);
        assert!(!spike(Aggregate::Count).fires(&s, 1009.0, 889.5).0);
    }

    #[test]
    fn a_partly_watched_baseline_counts_for_its_watched_span() {
        // One event every 10 s from 400, watched since 400: at 1009 the window
        // (949, 1009] holds 6, the baseline (349, 949] 55 events over 549 watched
        // seconds, ~6 a minute: steady, no spike (over the whole 600 s it was 5.5).
        let mut s = Series::default();
        for t in 0..61 {
            s.add(400.0 + 10.0 * f64::from(t), 1.0, 660.0);
        }
        let mut steady = spike(Aggregate::Count);
        steady.factor = 1.05;
        assert!(!steady.fires(&s, 1009.0, 400.0).0);
        assert!(steady.fires(&s, 1009.0, f64::NEG_INFINITY).0);
        let mut rate = spike(Aggregate::Rate);
        rate.factor = 1.05;
        assert!(!rate.fires(&s, 1009.0, 400.0).0);
    }

    #[test]
    fn a_full_series_may_have_dropped_its_baseline() {
        let mut s = Series::default();
        for i in 0..=MAX_SAMPLES {
            s.add(1000.0 + i as f64 / 1000.0, 1.0, 660.0); // the first went for the cap
        }
        assert_eq!(s.len(), MAX_SAMPLES);
        assert!(
            !spike(Aggregate::Count)
                .fires(&s, 1010.0, f64::NEG_INFINITY)
                .0
        );
    }

    #[test]
    fn out_of_order_and_expired_samples() {
        let mut s = Series::default();
        s.add(10.0, 1.0, 30.0);
        s.add(5.0, 2.0, 30.0);
        s.add(50.0, 4.0, 30.0); // drops 5 and 10 (older than 50 - 30)
        assert_eq!(s.samples(), vec![(50.0, 4.0)]);
        assert_eq!(s.total(0, 1), 4.0);
    }
}
