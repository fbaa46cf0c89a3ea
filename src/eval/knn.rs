//! Neighbourhood baselines over the training users' likes: item-kNN (items liked together
//! with the ones this user liked) and user-kNN (what the training users most like this user
//! liked). Both rank by a fallback score (the protocol's bar) until the first like.
use super::{top_k, EvalError, Recommender};
use crate::data::{Dataset, LIKE_THRESHOLD};

/// The items each of `users` liked (rating ≥ [`LIKE_THRESHOLD`]), sorted.
pub(super) fn liked_items(ds: &Dataset, users: &[u32]) -> Vec<Vec<u32>> {
    users
        .iter()
        .map(|&u| {
            let mut l: Vec<u32> = ds
                .user_ratings(u)
                .iter()
                .filter(|r| r.value >= LIKE_THRESHOLD)
                .map(|r| r.item)
                .collect();
            l.sort_unstable();
            l
        })
        .collect()
}

/// The users (indices into `likes`) who liked each of `n_items` items, from each user's
/// liked items.
pub(super) fn likers(likes: &[Vec<u32>], n_items: usize) -> Vec<Vec<u32>> {
    let mut likers = vec![Vec::new(); n_items];
    for (v, l) in likes.iter().enumerate() {
        for &i in l {
            likers[i as usize].push(v as u32);
        }
    }
    likers
}

/// Item-kNN: a candidate's score is the sum of its cosine similarities (co-likes among training
/// users) to the items liked so far in the episode; ties (e.g. before the first like) are
/// broken by the smoothed mean rating.
pub struct ItemKnn {
    n: usize,
    sim: Vec<f32>,
    fallback: Vec<f64>,
    liked: Vec<u32>,
}

impl ItemKnn {
    /// Similarities from the likes of `users` in `ds`; `fallback` scores items before any like.
    pub fn new(ds: &Dataset, users: &[u32], fallback: Vec<f64>) -> Self {
        let n = ds.n_items();
        let mut co = vec![0f32; n * n];
        let mut likes = vec![0f32; n];
        for liked in liked_items(ds, users) {
            for &a in &liked {
                likes[a as usize] += 1.0;
                for &b in &liked {
                    co[a as usize * n + b as usize] += 1.0;
                }
            }
        }
        for a in 0..n {
            for b in 0..n {
                let d = (likes[a] * likes[b]).sqrt();
                co[a * n + b] = if a != b && d > 0.0 {
                    co[a * n + b] / d
                } else {
                    0.0
                };
            }
        }
        ItemKnn {
            n,
            sim: co,
            fallback,
            liked: Vec::new(),
        }
    }

    fn score(&self, item: u32) -> f64 {
        let i = item as usize;
        if i >= self.n {
            return f64::MIN;
        }
        let s: f64 = self
            .liked
            .iter()
            .map(|&j| f64::from(self.sim[j as usize * self.n + i]))
            .sum();
        s + 1e-6 * self.fallback.get(i).copied().unwrap_or(0.0)
    }
}

impl Recommender for ItemKnn {
    fn reset(&mut self, _: u64) {
        self.liked.clear();
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        Ok(top_k(candidates, k, |i| self.score(i)))
    }
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        if reward > 0.5 && (item as usize) < self.n {
            self.liked.push(item);
        }
        Ok(())
    }
}

/// User-kNN: the training users most similar to this user (cosine similarity of their like
/// sets with the items liked so far in the episode) vote for the items they liked, each with
/// its similarity; the `neighbours` most similar vote. Ties (before the first like) are broken
/// by the fallback score.
pub struct UserKnn {
    /// Items liked by each training user.
    likes: Vec<Vec<u32>>,
    /// Training users who liked each item.
    likers: Vec<Vec<u32>>,
    /// The fallback score scaled far below any vote: every item's score before the first like.
    ties: Vec<f64>,
    neighbours: usize,
    /// Co-likes of each training user with this user so far.
    overlap: Vec<u32>,
    liked: usize,
    scores: Vec<f64>,
}

impl UserKnn {
    /// Neighbours among `users` of `ds`; `fallback` scores items before any like.
    pub fn new(ds: &Dataset, users: &[u32], fallback: Vec<f64>, neighbours: usize) -> Self {
        let likes = liked_items(ds, users);
        let likers = likers(&likes, ds.n_items());
        let max = fallback
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(1e-12);
        let ties: Vec<f64> = fallback.iter().map(|v| 1e-6 * v / max).collect();
        UserKnn {
            overlap: vec![0; likes.len()],
            scores: ties.clone(),
            ties,
            likes,
            likers,
            neighbours,
            liked: 0,
        }
    }

    /// Recomputes every item's score from the current neighbours.
    fn rescore(&mut self) {
        let mut sims: Vec<(f64, usize)> = self
            .overlap
            .iter()
            .enumerate()
            .filter(|(_, &o)| o > 0)
            .map(|(v, &o)| {
                let d = ((self.liked * self.likes[v].len()) as f64).sqrt();
                (f64::from(o) / d, v)
            })
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        sims.truncate(self.neighbours);
        self.scores.clone_from(&self.ties);
        for (sim, v) in sims {
            for &i in &self.likes[v] {
                self.scores[i as usize] += sim;
            }
        }
    }
}

impl Recommender for UserKnn {
    fn reset(&mut self, _: u64) {
        self.overlap.fill(0);
        self.liked = 0;
        self.rescore();
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        Ok(top_k(candidates, k, |i| {
            self.scores.get(i as usize).copied().unwrap_or(f64::MIN)
        }))
    }
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        if reward > 0.5 {
            if let Some(users) = self.likers.get(item as usize) {
                for &v in users {
                    self.overlap[v as usize] += 1;
                }
                self.liked += 1;
                self.rescore();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::baselines::tests::{all_users, tiny};
    use crate::eval::baselines::ItemStats;

    #[test]
    fn item_knn_follows_co_likes() {
        // users 0-4 like items 0 and 1; users 5-9 like items 2 and 3; item 1 is the most
        // popular, so it leads before any like
        let mut r = Vec::new();
        for u in 0..5 {
            r.extend([(u, 0, 5.0), (u, 1, 5.0)]);
        }
        for u in 5..10 {
            r.extend([(u, 2, 4.0), (u, 3, 4.0)]);
        }
        let ds = tiny(10, 4, &r);
        let stats = ItemStats::new(&ds, &all_users(&ds));
        let mut knn = ItemKnn::new(&ds, &all_users(&ds), stats.smoothed_mean(10.0));
        knn.reset(0);
        assert_eq!(knn.slate(&[1, 3], 1).unwrap(), vec![1]);
        knn.update(2, 1.0).unwrap();
        assert_eq!(knn.slate(&[0, 1, 3], 1).unwrap(), vec![3]);
        // a dislike teaches nothing
        knn.reset(0);
        knn.update(2, 0.0).unwrap();
        assert_eq!(knn.slate(&[1, 3], 1).unwrap(), vec![1]);
    }

    #[test]
    fn user_knn_follows_similar_users() {
        // users 0-4 like items 0, 1 and 4; users 5-9 like items 2, 3 and 4; user 10 likes 5
        let mut r = Vec::new();
        for u in 0..5 {
            r.extend([(u, 0, 5.0), (u, 1, 5.0), (u, 4, 4.0)]);
        }
        for u in 5..10 {
            r.extend([(u, 2, 4.0), (u, 3, 4.0), (u, 4, 5.0)]);
        }
        r.extend([(10, 5, 5.0), (10, 1, 1.0)]);
        let ds = tiny(11, 6, &r);
        let stats = ItemStats::new(&ds, &all_users(&ds));
        let fallback: Vec<f64> = stats.likes.iter().map(|&l| f64::from(l)).collect();
        let mut knn = UserKnn::new(&ds, &all_users(&ds), fallback, 5);
        knn.reset(0);
        // before a like: the most liked item
        assert_eq!(knn.slate(&[0, 1, 2, 3, 4, 5], 1).unwrap(), vec![4]);
        knn.update(2, 1.0).unwrap();
        assert_eq!(knn.slate(&[0, 1, 3, 5], 1).unwrap(), vec![3]);
        // a dislike teaches nothing; reset forgets
        knn.reset(0);
        knn.update(2, 0.0).unwrap();
        assert_eq!(knn.slate(&[0, 3], 1).unwrap(), vec![0]);
        knn.update(1, 1.0).unwrap();
        assert_eq!(knn.slate(&[2, 3, 0], 1).unwrap(), vec![0]);
        // one neighbour only: the single most similar user votes
        let mut one = UserKnn::new(&ds, &all_users(&ds), vec![0.0; 6], 1);
        one.reset(0);
        one.update(4, 1.0).unwrap();
        let s = one.slate(&[0, 1, 2, 3, 5], 2).unwrap();
        assert_eq!(
            s,
            vec![0, 1],
            "user 0 (ties go to the first user) votes for 0 and 1"
        );
    }
}
