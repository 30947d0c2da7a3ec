//! A box's helpers as the engine's labels describe them, and the rules over that tree:
//! who may spawn (depth and breadth budgets, the box's total), which number comes next,
//! who may act on whom, who sees what.
//!
//! State lives in the labels the hub put on each helper container (the box cannot
//! change them), so a restarted hub counts exactly what its predecessor did. Pure: the
//! engine lookup is the caller's.

use std::collections::{BTreeMap, BTreeSet};

use super::labels;
use super::limits::Limits;
use super::member::Member;
use super::protocol::{ErrorCode, HelperInfo, Model};
use crate::runtime::labels as box_labels;

/// One helper container of this box, from its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperRecord {
    pub number: u32,
    /// 0: the director.
    pub parent: u32,
    /// What this helper may still spawn below itself.
    pub depth: u32,
    pub breadth: u32,
    pub model: Option<String>,
    pub running: bool,
    pub id: String,
    pub name: String,
}

fn label_u32(l: &BTreeMap<String, String>, key: &str) -> Option<u32> {
    let v = l.get(key)?;
    if v.is_empty() || (v.len() > 1 && v.starts_with('0')) || !v.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    v.parse().ok()
}

impl HelperRecord {
    /// The helper a container's labels describe, if they say it is one of box `hash`'s
    /// helpers and every label is well formed.
    pub fn from_labels(
        id: &str,
        name: &str,
        running: bool,
        l: &BTreeMap<String, String>,
        hash: &str,
    ) -> Option<Self> {
        if hash.is_empty()
            || l.get(box_labels::HASH).map(String::as_str) != Some(hash)
            || l.get(labels::ROLE).map(String::as_str) != Some(labels::ROLE_HELPER)
        {
            return None;
        }
        let number = label_u32(l, labels::HELPER).filter(|n| *n > 0)?;
        let parent = label_u32(l, labels::PARENT)?;
        if parent == number {
            return None;
        }
        Some(Self {
            number,
            parent,
            depth: label_u32(l, labels::DEPTH)?,
            breadth: label_u32(l, labels::BREADTH)?,
            model: l
                .get(labels::MODEL)
                .and_then(|m| Model::parse(m))
                .map(|m| m.as_str().to_owned()),
            running,
            id: id.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn info(&self) -> HelperInfo {
        HelperInfo {
            helper: self.number,
            parent: self.parent,
            status: if self.running { "running" } else { "stopped" }.into(),
            model: self.model.clone(),
            depth: self.depth,
            breadth: self.breadth,
            container: self.name.clone(),
        }
    }
}

/// A spawn the rules allow: the new helper's number and budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnPlan {
    pub number: u32,
    pub parent: u32,
    pub depth: u32,
    pub breadth: u32,
    pub model: Option<Model>,
}

/// A refusal: the code and the message a user reads.
pub type Refusal = (ErrorCode, String);

/// All helpers of one box.
#[derive(Clone, Debug, Default)]
pub struct Team {
    helpers: BTreeMap<u32, HelperRecord>,
}

impl Team {
    /// Duplicate numbers (only possible if someone else labelled a container as ours)
    /// keep the running one, then the first seen.
    pub fn new(records: Vec<HelperRecord>) -> Self {
        let mut helpers: BTreeMap<u32, HelperRecord> = BTreeMap::new();
        for r in records {
            match helpers.get(&r.number) {
                Some(have) if have.running || !r.running => {}
                _ => {
                    helpers.insert(r.number, r);
                }
            }
        }
        Self { helpers }
    }

    /// Record a helper the hub just started (or restarted), without asking the engine.
    pub fn note(&mut self, r: HelperRecord) {
        self.helpers.insert(r.number, r);
    }

    pub fn forget(&mut self, n: u32) {
        self.helpers.remove(&n);
    }

    pub fn set_running(&mut self, n: u32, running: bool) {
        if let Some(h) = self.helpers.get_mut(&n) {
            h.running = running;
        }
    }

    pub fn get(&self, n: u32) -> Option<&HelperRecord> {
        self.helpers.get(&n)
    }

    pub fn len(&self) -> usize {
        self.helpers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.helpers.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &HelperRecord> {
        self.helpers.values()
    }

    fn budget(&self, who: Member, limits: &Limits) -> Option<(u32, u32)> {
        match who {
            Member::Director => Some((limits.max_depth, limits.max_breadth)),
            Member::Helper(n) => self.get(n).map(|h| (h.depth, h.breadth)),
        }
    }

    pub fn children(&self, parent: u32) -> impl Iterator<Item = &HelperRecord> {
        self.helpers.values().filter(move |h| h.parent == parent)
    }

    /// `n`'s descendants, deepest first (the order to remove them in).
    pub fn descendants(&self, n: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([n]);
        self.collect(n, &mut seen, &mut out);
        out
    }

    fn collect(&self, n: u32, seen: &mut BTreeSet<u32>, out: &mut Vec<u32>) {
        for c in self.children(n).map(|h| h.number).collect::<Vec<_>>() {
            if seen.insert(c) {
                self.collect(c, seen, out);
                out.push(c);
            }
        }
    }

    /// Whether `who` may stop, clean up or respawn helper `n`: the director may act on
    /// every helper of the box, a helper only on its own descendants.
    pub fn may_act_on(&self, who: Member, n: u32) -> bool {
        match who {
            Member::Director => true,
            Member::Helper(me) => self.descendants(me).contains(&n),
        }
    }

    /// What `who` may list and read about.
    pub fn visible_to(&self, who: Member) -> Vec<&HelperRecord> {
        match who {
            Member::Director => self.helpers.values().collect(),
            Member::Helper(me) => {
                let mine: BTreeSet<u32> = self.descendants(me).into_iter().collect();
                self.helpers
                    .values()
                    .filter(|h| mine.contains(&h.number))
                    .collect()
            }
        }
    }

    /// Upstream's numbering: the smallest positive number not in use.
    pub fn next_number(&self) -> u32 {
        (1..)
            .find(|n| !self.helpers.contains_key(n))
            .unwrap_or(u32::MAX)
    }

    /// Decide a spawn by `who`. `depth`/`breadth` from the request only narrow `who`'s
    /// own budget (upstream's `--depth/--breadth`); the new helper gets one less depth.
    pub fn plan_spawn(
        &self,
        who: Member,
        depth: Option<u32>,
        breadth: Option<u32>,
        model: Option<Model>,
        limits: &Limits,
    ) -> Result<SpawnPlan, Refusal> {
        let Some((have_depth, have_breadth)) = self.budget(who, limits) else {
            return Err((
                ErrorCode::Forbidden,
                format!("{who} is not a helper of this box"),
            ));
        };
        let d = depth.map_or(have_depth, |d| d.min(have_depth));
        let b = breadth.map_or(have_breadth, |b| b.min(have_breadth));
        if d == 0 {
            return Err((
                ErrorCode::BudgetExhausted,
                "spawn depth exhausted (depth=0)".into(),
            ));
        }
        let children = self.children(who.number()).count() as u64;
        if children >= u64::from(b) {
            return Err((
                ErrorCode::BudgetExhausted,
                format!("breadth limit reached ({children}/{b})"),
            ));
        }
        if self.len() as u64 >= u64::from(limits.max_helpers) {
            return Err((
                ErrorCode::BudgetExhausted,
                format!(
                    "this box has {}/{} helpers (stopped ones count until cleaned up)",
                    self.len(),
                    limits.max_helpers
                ),
            ));
        }
        Ok(SpawnPlan {
            number: self.next_number(),
            parent: who.number(),
            depth: d - 1,
            breadth: b,
            model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(number: u32, parent: u32, depth: u32, running: bool) -> HelperRecord {
        HelperRecord {
            number,
            parent,
            depth,
            breadth: 4,
            model: None,
            running,
            id: format!("id{number}"),
            name: format!("kanibako-app-helper-{number}"),
        }
    }

    fn labels_for(n: &str, parent: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (box_labels::HASH.into(), "abc".into()),
            (labels::ROLE.into(), "helper".into()),
            (labels::HELPER.into(), n.into()),
            (labels::PARENT.into(), parent.into()),
            (labels::DEPTH.into(), "3".into()),
            (labels::BREADTH.into(), "4".into()),
            (labels::MODEL.into(), "sonnet".into()),
        ])
    }

    #[test]
    fn only_well_formed_labels_of_this_box_make_a_helper() {
        let r = HelperRecord::from_labels("i", "n", true, &labels_for("2", "0"), "abc").unwrap();
        assert_eq!((r.number, r.parent, r.depth, r.breadth), (2, 0, 3, 4));
        assert_eq!(r.model.as_deref(), Some("sonnet"));
        assert!(
            HelperRecord::from_labels("i", "n", true, &labels_for("2", "0"), "other").is_none()
        );
        assert!(HelperRecord::from_labels("i", "n", true, &labels_for("2", "0"), "").is_none());
        for bad in ["0", "-1", "x", "", "02", "99999999999"] {
            assert!(
                HelperRecord::from_labels("i", "n", true, &labels_for(bad, "0"), "abc").is_none(),
                "{bad}"
            );
        }
        assert!(HelperRecord::from_labels("i", "n", true, &labels_for("2", "2"), "abc").is_none());
        let mut director = labels_for("2", "0");
        director.remove(labels::ROLE);
        assert!(HelperRecord::from_labels("i", "n", true, &director, "abc").is_none());
        let mut odd_model = labels_for("2", "0");
        odd_model.insert(labels::MODEL.into(), "x; rm".into());
        let r = HelperRecord::from_labels("i", "n", true, &odd_model, "abc").unwrap();
        assert_eq!(r.model, None);
    }

    #[test]
    fn depth_breadth_and_total_budgets() {
        let l = Limits {
            max_helpers: 5,
            max_depth: 2,
            max_breadth: 2,
            ..Limits::default()
        };
        let team = Team::default();
        let p = team
            .plan_spawn(Member::Director, None, None, None, &l)
            .unwrap();
        assert_eq!((p.number, p.parent, p.depth, p.breadth), (1, 0, 1, 2));
        // flags narrow, never widen
        let p = team
            .plan_spawn(Member::Director, Some(9), Some(1), None, &l)
            .unwrap();
        assert_eq!((p.depth, p.breadth), (1, 1));
        let err = team
            .plan_spawn(Member::Director, Some(0), None, None, &l)
            .unwrap_err();
        assert_eq!(
            err,
            (
                ErrorCode::BudgetExhausted,
                "spawn depth exhausted (depth=0)".into()
            )
        );

        // breadth counts stopped children too
        let team = Team::new(vec![rec(1, 0, 1, true), rec(2, 0, 1, false)]);
        let err = team
            .plan_spawn(Member::Director, None, None, None, &l)
            .unwrap_err();
        assert_eq!(err.1, "breadth limit reached (2/2)");
        // a helper spends its own budget; its child gets one less depth
        let p = team
            .plan_spawn(Member::Helper(1), None, None, None, &l)
            .unwrap();
        assert_eq!((p.number, p.parent, p.depth), (3, 1, 0));
        let team = Team::new(vec![
            rec(1, 0, 1, true),
            rec(2, 0, 1, false),
            rec(3, 1, 0, true),
        ]);
        let err = team
            .plan_spawn(Member::Helper(3), None, None, None, &l)
            .unwrap_err();
        assert_eq!(err.0, ErrorCode::BudgetExhausted);
        assert!(matches!(
            team.plan_spawn(Member::Helper(9), None, None, None, &l),
            Err((ErrorCode::Forbidden, _))
        ));
        // the box's total
        let l1 = Limits {
            max_helpers: 3,
            ..l.clone()
        };
        let err = team
            .plan_spawn(Member::Helper(1), None, None, None, &l1)
            .unwrap_err();
        assert!(err.1.contains("3/3 helpers"), "{}", err.1);
    }

    #[test]
    fn numbers_fill_gaps_and_descendants_come_deepest_first() {
        let team = Team::new(vec![
            rec(1, 0, 3, true),
            rec(2, 1, 2, true),
            rec(4, 2, 1, true),
            rec(5, 0, 3, true),
        ]);
        assert_eq!(team.next_number(), 3);
        assert_eq!(team.descendants(1), vec![4, 2]);
        assert!(team.descendants(5).is_empty());
        assert!(team.may_act_on(Member::Director, 5));
        assert!(team.may_act_on(Member::Helper(1), 4));
        assert!(!team.may_act_on(Member::Helper(1), 1), "not on itself");
        assert!(!team.may_act_on(Member::Helper(1), 5), "not on a sibling");
        assert!(!team.may_act_on(Member::Helper(4), 2), "not on its parent");
        let seen: Vec<u32> = team
            .visible_to(Member::Helper(1))
            .iter()
            .map(|h| h.number)
            .collect();
        assert_eq!(seen, vec![2, 4]);
        assert_eq!(team.visible_to(Member::Director).len(), 4);
    }

    #[test]
    fn a_labelled_loop_cannot_hang_the_walk() {
        let team = Team::new(vec![rec(1, 2, 1, true), rec(2, 1, 1, true)]);
        assert_eq!(team.descendants(1), vec![2]);
        // duplicates keep the running one
        let team = Team::new(vec![rec(1, 0, 1, false), rec(1, 0, 2, true)]);
        assert!(team.get(1).unwrap().running);
    }
}
