//! The methods `metarec eval` compares, by name.
use super::EvalError;

/// An evaluated method (`linucb-cov`, `lin-ts-cov`: the linear bandits over item vectors
/// whitened by the training users' prior covariance, [`crate::linalg::Whitening`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Random,
    PopularityLikes,
    PopularityBayes,
    ItemKnn,
    UserKnn,
    UserPosterior,
    EpsilonGreedyMf,
    LinUcb,
    LinTs,
    LinUcbCov,
    LinTsCov,
    SupFixed,
    SupFinetune,
    MetaRl,
    MetaRlFixed,
    MetaRlTrpo,
    MetaRlReptile,
    MetaRlFomaml,
    RlScratch,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 19] = [
        Method::Random,
        Method::PopularityLikes,
        Method::PopularityBayes,
        Method::ItemKnn,
        Method::UserKnn,
        Method::UserPosterior,
        Method::EpsilonGreedyMf,
        Method::LinUcb,
        Method::LinTs,
        Method::LinUcbCov,
        Method::LinTsCov,
        Method::SupFixed,
        Method::SupFinetune,
        Method::MetaRl,
        Method::MetaRlFixed,
        Method::MetaRlTrpo,
        Method::MetaRlReptile,
        Method::MetaRlFomaml,
        Method::RlScratch,
    ];

    /// The method's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Random => "random",
            Method::PopularityLikes => "pop-likes",
            Method::PopularityBayes => "pop-bayes",
            Method::ItemKnn => "item-knn",
            Method::UserKnn => "user-knn",
            Method::UserPosterior => "user-posterior",
            Method::EpsilonGreedyMf => "eps-greedy-mf",
            Method::LinUcb => "linucb",
            Method::LinTs => "lin-ts",
            Method::LinUcbCov => "linucb-cov",
            Method::LinTsCov => "lin-ts-cov",
            Method::SupFixed => "sup-fixed",
            Method::SupFinetune => "sup-finetune",
            Method::MetaRl => "meta-rl",
            Method::MetaRlFixed => "meta-rl-fixed",
            Method::MetaRlTrpo => "meta-rl-trpo",
            Method::MetaRlReptile => "meta-rl-reptile",
            Method::MetaRlFomaml => "meta-rl-fomaml",
            Method::RlScratch => "rl-scratch",
        }
    }

    /// The method called `name`.
    pub fn parse(name: &str) -> Result<Self, EvalError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                EvalError(format!(
                    "unknown method {name:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}
