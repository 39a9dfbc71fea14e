//! The deploy as a state machine (design.md, "The deploy, as a state machine"):
//!
//! `queued → resolving → pulling → starting → health_checking → switching → draining →
//! watching → succeeded`, or `failed` / `rolled_back` / `cancelled` / `superseded`.
//!
//! Invariants kept here: until `switching` nothing users see has changed; only a queued deploy
//! can be superseded; every unfinished state has a defined recovery after a crash.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    Queued,
    Resolving,
    Pulling,
    Starting,
    HealthChecking,
    Switching,
    Draining,
    Watching,
    Succeeded,
    Failed,
    RolledBack,
    Cancelled,
    Superseded,
}

/// What started a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Webhook,
    Poll,
    Manual,
    Promote,
    Rollback,
    Quick,
}

/// What start-up reconciliation does with a deploy it finds in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Finished: nothing to do.
    None,
    /// Not started: run it again.
    Requeue,
    /// Interrupted before users saw anything: remove the new container, mark it failed; the
    /// old instance never stopped serving.
    AbandonBeforeSwitch,
    /// Interrupted while the route was being switched: look where it points. If at a healthy
    /// new instance, carry on draining; otherwise point it back and roll back.
    SettleSwitch,
    /// The new instance was live: finish (stop the old one) if it is healthy, else roll back.
    FinishOrRollBack,
}

impl DeployState {
    /// The happy path, in order.
    pub const PATH: [DeployState; 9] = [
        DeployState::Queued,
        DeployState::Resolving,
        DeployState::Pulling,
        DeployState::Starting,
        DeployState::HealthChecking,
        DeployState::Switching,
        DeployState::Draining,
        DeployState::Watching,
        DeployState::Succeeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Queued => "queued",
            DeployState::Resolving => "resolving",
            DeployState::Pulling => "pulling",
            DeployState::Starting => "starting",
            DeployState::HealthChecking => "health_checking",
            DeployState::Switching => "switching",
            DeployState::Draining => "draining",
            DeployState::Watching => "watching",
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::RolledBack => "rolled_back",
            DeployState::Cancelled => "cancelled",
            DeployState::Superseded => "superseded",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeployState::Succeeded
                | DeployState::Failed
                | DeployState::RolledBack
                | DeployState::Cancelled
                | DeployState::Superseded
        )
    }

    /// Whether users may already be served by the new version.
    pub fn is_visible(self) -> bool {
        matches!(
            self,
            DeployState::Switching
                | DeployState::Draining
                | DeployState::Watching
                | DeployState::Succeeded
        )
    }

    fn position(self) -> Option<usize> {
        Self::PATH.iter().position(|s| *s == self)
    }

    /// Whether a deploy may move from `self` to `next`.
    pub fn can_move_to(self, next: DeployState) -> bool {
        if self.is_terminal() {
            return false;
        }
        match next {
            // Only a deploy that has not started can be replaced by a newer image.
            DeployState::Superseded => self == DeployState::Queued,
            // Cancelling is possible until users see the new version.
            DeployState::Cancelled => !self.is_visible(),
            // Failing before the switch leaves the old version serving.
            DeployState::Failed => !self.is_visible() && self != DeployState::Queued,
            // Rolling back is what happens once the switch began.
            DeployState::RolledBack => self.is_visible(),
            _ => match (self.position(), next.position()) {
                (Some(a), Some(b)) => b == a + 1,
                _ => false,
            },
        }
    }

    pub fn recovery(self) -> Recovery {
        match self {
            DeployState::Queued => Recovery::Requeue,
            DeployState::Resolving
            | DeployState::Pulling
            | DeployState::Starting
            | DeployState::HealthChecking => Recovery::AbandonBeforeSwitch,
            DeployState::Switching => Recovery::SettleSwitch,
            DeployState::Draining | DeployState::Watching => Recovery::FinishOrRollBack,
            _ => Recovery::None,
        }
    }
}

impl fmt::Display for DeployState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeployState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::PATH
            .iter()
            .chain(&[
                DeployState::Failed,
                DeployState::RolledBack,
                DeployState::Cancelled,
                DeployState::Superseded,
            ])
            .find(|d| d.as_str() == s)
            .copied()
            .ok_or_else(|| format!("unknown deploy state {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeployState::*;

    const ALL: [DeployState; 13] = [
        Queued,
        Resolving,
        Pulling,
        Starting,
        HealthChecking,
        Switching,
        Draining,
        Watching,
        Succeeded,
        Failed,
        RolledBack,
        Cancelled,
        Superseded,
    ];

    #[test]
    fn the_happy_path_moves_one_step_at_a_time() {
        for w in DeployState::PATH.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Queued.can_move_to(Pulling), "no skipping");
        assert!(!Watching.can_move_to(Draining), "no going back");
    }

    #[test]
    fn terminal_states_are_final() {
        for t in ALL.iter().filter(|s| s.is_terminal()) {
            for n in ALL {
                assert!(!t.can_move_to(n), "{t} -> {n}");
            }
            assert_eq!(t.recovery(), Recovery::None);
        }
    }

    #[test]
    fn failure_before_the_switch_and_rollback_after() {
        for s in [Resolving, Pulling, Starting, HealthChecking] {
            assert!(s.can_move_to(Failed) && !s.can_move_to(RolledBack), "{s}");
            assert!(!s.is_visible());
            assert_eq!(s.recovery(), Recovery::AbandonBeforeSwitch);
        }
        for s in [Switching, Draining, Watching] {
            assert!(
                s.can_move_to(RolledBack) && !s.can_move_to(Failed) && !s.can_move_to(Cancelled),
                "{s}"
            );
            assert!(s.is_visible());
        }
        assert_eq!(Switching.recovery(), Recovery::SettleSwitch);
        assert_eq!(Watching.recovery(), Recovery::FinishOrRollBack);
    }

    #[test]
    fn only_queued_deploys_are_superseded() {
        for s in ALL {
            assert_eq!(s.can_move_to(Superseded), s == Queued, "{s}");
        }
        assert_eq!(Queued.recovery(), Recovery::Requeue);
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<DeployState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("paused".parse::<DeployState>().is_err());
    }
}
