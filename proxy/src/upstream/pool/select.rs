//! Which deployment of a pool takes the next attempt: the lowest priority group that has a
//! candidate, and within it smooth weighted round robin (nginx's), which spreads each
//! deployment's turns evenly in proportion to its weight instead of in bursts.

use std::sync::Mutex;

use crate::config::Deployment;

/// The round-robin state of one pool.
#[derive(Debug)]
pub struct Selector {
    current: Mutex<Vec<i64>>,
}

impl Selector {
    pub fn new(size: usize) -> Selector {
        Selector {
            current: Mutex::new(vec![0; size]),
        }
    }

    /// The deployment (index into `deployments`) for the next attempt among those `candidate`
    /// accepts; `None` when no deployment with a weight is a candidate.
    pub fn pick(
        &self,
        deployments: &[Deployment],
        candidate: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let eligible = |i: usize| deployments[i].weight > 0 && candidate(i);
        let priority = (0..deployments.len())
            .filter(|&i| eligible(i))
            .map(|i| deployments[i].priority)
            .min()?;
        let group: Vec<usize> = (0..deployments.len())
            .filter(|&i| deployments[i].priority == priority && eligible(i))
            .collect();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best = group[0];
        for &i in &group {
            let weight = i64::from(deployments[i].weight);
            current[i] += weight;
            total += weight;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: &[(u32, u32)]) -> Vec<Deployment> {
        spec.iter()
            .enumerate()
            .map(|(i, &(priority, weight))| Deployment {
                upstream: 0,
                name: format!("d{i}"),
                priority,
                weight,
            })
            .collect()
    }

    fn shares(deployments: &[Deployment], n: usize, candidate: impl Fn(usize) -> bool) -> Vec<f64> {
        let selector = Selector::new(deployments.len());
        let mut counts = vec![0usize; deployments.len()];
        for _ in 0..n {
            counts[selector.pick(deployments, &candidate).expect("pick")] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn over_ten_thousand_picks_each_share_is_within_two_points_of_its_weight() {
        let deployments = pool(&[(0, 5), (0, 3), (0, 2), (1, 10)]);
        let got = shares(&deployments, 10_000, |_| true);
        for (share, want) in got.iter().zip([0.5, 0.3, 0.2, 0.0]) {
            assert!((share - want).abs() <= 0.02, "{got:?}");
        }
    }

    #[test]
    fn turns_are_interleaved_not_in_bursts() {
        let deployments = pool(&[(0, 2), (0, 1)]);
        let selector = Selector::new(2);
        let order: Vec<usize> = (0..6)
            .map(|_| selector.pick(&deployments, |_| true).expect("pick"))
            .collect();
        assert_eq!(order, vec![0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn a_higher_priority_group_takes_traffic_only_while_every_lower_one_is_out() {
        let deployments = pool(&[(0, 1), (0, 1), (1, 1), (2, 1)]);
        let got = shares(&deployments, 100, |i| i != 0);
        assert_eq!(got, vec![0.0, 1.0, 0.0, 0.0]);
        let got = shares(&deployments, 100, |i| i >= 2);
        assert_eq!(got, vec![0.0, 0.0, 1.0, 0.0]);
        let got = shares(&deployments, 100, |i| i == 3);
        assert_eq!(got, vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn weight_zero_takes_nothing_and_no_candidate_gives_none() {
        let deployments = pool(&[(0, 0), (1, 1)]);
        assert_eq!(shares(&deployments, 10, |_| true), vec![0.0, 1.0]);
        let selector = Selector::new(2);
        assert_eq!(selector.pick(&deployments, |i| i == 0), None);
    }
}
