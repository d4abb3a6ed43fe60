//! Ordered acks for one source.
//!
//! The source hands every record to [`Acker::track`] (or a batch to [`Acker::track_run`],
//! which keeps only the batch's last position) before sending it on, saying how many
//! destinations must write it. Each destination reports with [`Acker::ack`] (in any order,
//! across and within destinations); a record a processor drops is tracked with zero
//! destinations, so it counts as done at once. [`Acker::ack`] returns the position that may
//! now be persisted: the position of the newest record such that it and every record before
//! it are done. Persisting that position, then acking the source, can never skip a record
//! still in flight.
//!
//! A processor may replace a record by several ([`Acker::expand`]: `split`, `clone`); the
//! copies share the record's ticket, and a destination's ack counts for one copy, so the
//! record is done for that destination only once every copy is.

use culvert_domain::Position;
use std::collections::VecDeque;
use std::time::Instant;

/// The most destinations one record can fan out to (the width of the ack bitmap).
pub const MAX_DESTINATIONS: usize = 64;

/// A tracked record's number within its source, from 0, in the order the source produced
/// them.
pub type Ticket = u64;

/// What can go wrong when acking: each is a bug in the caller, reported, never ignored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    /// The ticket was never handed out, or its record is already done and released.
    #[error("record {ticket} is not in flight")]
    NotInFlight {
        /// The ticket acked.
        ticket: Ticket,
    },
    /// A destination acked the same record twice.
    #[error("destination {destination} acked record {ticket} twice")]
    DuplicateAck {
        /// The ticket acked.
        ticket: Ticket,
        /// The destination that acked it.
        destination: usize,
    },
    /// A destination index outside the record's fan-out.
    #[error("record {ticket} has {fan_out} destinations, not {destination}")]
    UnknownDestination {
        /// The ticket acked.
        ticket: Ticket,
        /// The destination index given.
        destination: usize,
        /// How many destinations the record has.
        fan_out: usize,
    },
    /// More destinations than [`MAX_DESTINATIONS`].
    #[error("a record can go to at most {MAX_DESTINATIONS} destinations, not {0}")]
    TooManyDestinations(usize),
}

struct InFlight {
    /// `None` inside a run tracked with [`Acker::track_run`]: only a run's last record keeps
    /// its position, the one released once the whole run is done.
    position: Option<Position>,
    /// Bit i set = destination i has not acked yet.
    waiting: u64,
    fan_out: usize,
    /// Acks destination i still expects beyond one (copies a processor made); empty until
    /// the record is first expanded.
    copies: Vec<u32>,
}

/// The ordered-ack state of one source.
#[derive(Default)]
pub struct Acker {
    /// Records from `first` on, in order; done ones stay until every earlier one is done.
    in_flight: VecDeque<InFlight>,
    /// The ticket of `in_flight[0]`.
    first: Ticket,
    /// When each marked batch was read, with the ticket just past it, oldest first (only
    /// batches given to [`Acker::mark_read`]: the pipeline-duration metric's input).
    reads: VecDeque<(Ticket, Instant)>,
}

impl Acker {
    /// An acker with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Track the next record of the source, which `destinations` destinations must write.
    /// With zero destinations (the record was dropped) it is done at once; the position to
    /// persist, if that completes the prefix, is returned too.
    pub fn track(
        &mut self,
        position: Position,
        destinations: usize,
    ) -> Result<(Ticket, Option<Position>), AckError> {
        if destinations > MAX_DESTINATIONS {
            return Err(AckError::TooManyDestinations(destinations));
        }
        let ticket = self.first + self.in_flight.len() as Ticket;
        let waiting = if destinations == MAX_DESTINATIONS {
            u64::MAX
        } else {
            (1u64 << destinations) - 1
        };
        self.in_flight.push_back(InFlight {
            position: Some(position),
            waiting,
            fan_out: destinations,
            copies: Vec::new(),
        });
        Ok((ticket, self.release()))
    }

    /// Track the next `count` records of the source (a batch read together), which
    /// `destinations` destinations must each write; `last` is the position of the last of
    /// them. Only that position is kept: a position is released when its whole run is done,
    /// never part-way through one. That is what a source needs (each position acknowledges
    /// all before it), and it costs no copy of every record's position. Returns the first
    /// record's ticket (the others follow in order) and, as [`Acker::track`], the position
    /// to persist if the run is done at once (zero destinations).
    pub fn track_run(
        &mut self,
        count: usize,
        last: Position,
        destinations: usize,
    ) -> Result<(Ticket, Option<Position>), AckError> {
        if destinations > MAX_DESTINATIONS {
            return Err(AckError::TooManyDestinations(destinations));
        }
        let first = self.next_ticket();
        if count == 0 {
            return Ok((first, None));
        }
        let waiting = if destinations == MAX_DESTINATIONS {
            u64::MAX
        } else {
            (1u64 << destinations) - 1
        };
        let entry = |position| InFlight {
            position,
            waiting,
            fan_out: destinations,
            copies: Vec::new(),
        };
        self.in_flight.reserve(count);
        self.in_flight
            .extend(std::iter::repeat_with(|| entry(None)).take(count - 1));
        self.in_flight.push_back(entry(Some(last)));
        Ok((first, self.release()))
    }

    /// Destination `destination` (0-based, of the record's fan-out) has written record
    /// `ticket`. Returns the position that may now be persisted, if the done prefix grew.
    pub fn ack(
        &mut self,
        ticket: Ticket,
        destination: usize,
    ) -> Result<Option<Position>, AckError> {
        let index = ticket
            .checked_sub(self.first)
            .filter(|i| *i < self.in_flight.len() as Ticket)
            .ok_or(AckError::NotInFlight { ticket })? as usize;
        let record = &mut self.in_flight[index];
        if destination >= record.fan_out {
            return Err(AckError::UnknownDestination {
                ticket,
                destination,
                fan_out: record.fan_out,
            });
        }
        let bit = 1u64 << destination;
        if record.waiting & bit == 0 {
            return Err(AckError::DuplicateAck {
                ticket,
                destination,
            });
        }
        if let Some(more) = record.copies.get_mut(destination).filter(|n| **n > 0) {
            *more -= 1;
            return Ok(None);
        }
        record.waiting &= !bit;
        Ok(if index == 0 { self.release() } else { None })
    }

    /// A processor replaced one copy of record `ticket` by `extra + 1` copies, before the
    /// fan-out (`destination` `None`: every destination will see each copy) or in
    /// destination `destination`'s processors. Each copy needs its own ack from the
    /// destinations that see it. Call it before any of the new copies can be acked.
    pub fn expand(
        &mut self,
        ticket: Ticket,
        destination: Option<usize>,
        extra: u32,
    ) -> Result<(), AckError> {
        let index = ticket
            .checked_sub(self.first)
            .filter(|i| *i < self.in_flight.len() as Ticket)
            .ok_or(AckError::NotInFlight { ticket })? as usize;
        let record = &mut self.in_flight[index];
        let destinations = match destination {
            Some(d) if d >= record.fan_out => {
                return Err(AckError::UnknownDestination {
                    ticket,
                    destination: d,
                    fan_out: record.fan_out,
                })
            }
            Some(d) => d..d + 1,
            None => 0..record.fan_out,
        };
        if record.copies.is_empty() {
            record.copies = vec![0; record.fan_out];
        }
        for d in destinations {
            if record.waiting & (1u64 << d) == 0 {
                return Err(AckError::DuplicateAck {
                    ticket,
                    destination: d,
                });
            }
            record.copies[d] += extra;
        }
        Ok(())
    }

    /// Drop the done prefix; the newest position kept in it is the one to persist.
    fn release(&mut self) -> Option<Position> {
        let mut newest = None;
        while self.in_flight.front().is_some_and(|r| r.waiting == 0) {
            let done = self.in_flight.pop_front().expect("front exists");
            self.first += 1;
            if done.position.is_some() {
                newest = done.position;
            }
        }
        newest
    }

    /// The records tracked so far (up to [`Self::next_ticket`]) were read at `at`: when they
    /// are all released, [`Self::released_reads`] gives `at` back. One entry per batch, so
    /// the cost is per batch, not per record.
    pub fn mark_read(&mut self, at: Instant) {
        self.reads.push_back((self.next_ticket(), at));
    }

    /// Call `each` with the read time of every marked batch that is now wholly released,
    /// oldest first, and forget them.
    pub fn released_reads(&mut self, mut each: impl FnMut(Instant)) {
        while let Some(&(end, at)) = self.reads.front() {
            if end > self.first {
                break;
            }
            self.reads.pop_front();
            each(at);
        }
    }

    /// How many records are tracked and not yet released.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The ticket the next tracked record will get.
    pub fn next_ticket(&self) -> Ticket {
        self.first + self.in_flight.len() as Ticket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(n: u64) -> Position {
        Position(n.to_be_bytes().to_vec())
    }

    #[test]
    fn a_batch_read_time_comes_back_once_the_whole_batch_is_released() {
        let mut acker = Acker::new();
        let t0 = Instant::now();
        let (a, _) = acker.track(pos(0), 1).unwrap();
        let (b, _) = acker.track(pos(1), 1).unwrap();
        acker.mark_read(t0);
        let t1 = t0 + std::time::Duration::from_millis(1);
        let (c, _) = acker.track(pos(2), 1).unwrap();
        acker.mark_read(t1);
        let mut seen = Vec::new();
        acker.ack(a, 0).unwrap();
        acker.released_reads(|at| seen.push(at));
        assert!(
            seen.is_empty(),
            "half of the first batch is still in flight"
        );
        acker.ack(c, 0).unwrap();
        acker.released_reads(|at| seen.push(at));
        assert!(seen.is_empty(), "c is done but waits behind b");
        acker.ack(b, 0).unwrap();
        acker.released_reads(|at| seen.push(at));
        assert_eq!(seen, vec![t0, t1], "both batches, oldest first, once each");
        acker.released_reads(|at| seen.push(at));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn a_later_ack_waits_for_earlier_records() {
        let mut acker = Acker::new();
        let (a, _) = acker.track(pos(0), 2).unwrap();
        let (b, _) = acker.track(pos(1), 2).unwrap();
        assert_eq!(acker.ack(b, 0).unwrap(), None);
        assert_eq!(
            acker.ack(b, 1).unwrap(),
            None,
            "record 0 is still in flight"
        );
        assert_eq!(acker.ack(a, 1).unwrap(), None);
        assert_eq!(
            acker.ack(a, 0).unwrap(),
            Some(pos(1)),
            "both done: persist the newer"
        );
        assert_eq!(acker.in_flight(), 0);
    }

    #[test]
    fn an_expanded_record_is_done_only_when_every_copy_is() {
        let mut acker = Acker::new();
        let (a, _) = acker.track(pos(0), 2).unwrap();
        let (b, _) = acker.track(pos(1), 2).unwrap();
        // Before the fan-out, `a` became 3 copies; in destination 1's processors one copy
        // of `b` became 2.
        acker.expand(a, None, 2).unwrap();
        acker.expand(b, Some(1), 1).unwrap();
        for _ in 0..3 {
            assert_eq!(acker.ack(a, 0).unwrap(), None);
        }
        assert!(matches!(
            acker.ack(a, 0),
            Err(AckError::DuplicateAck { .. })
        ));
        assert_eq!(acker.ack(a, 1).unwrap(), None);
        assert_eq!(acker.ack(a, 1).unwrap(), None);
        assert_eq!(acker.ack(a, 1).unwrap(), Some(pos(0)), "the third copy");
        assert_eq!(acker.ack(b, 0).unwrap(), None);
        assert_eq!(acker.ack(b, 1).unwrap(), None, "one of two copies");
        assert_eq!(acker.ack(b, 1).unwrap(), Some(pos(1)));
        assert_eq!(acker.in_flight(), 0);
        // Expanding what is not in flight, or for a destination it does not have, is a bug.
        assert!(matches!(
            acker.expand(a, None, 1),
            Err(AckError::NotInFlight { .. })
        ));
        let (c, _) = acker.track(pos(2), 1).unwrap();
        assert!(matches!(
            acker.expand(c, Some(1), 1),
            Err(AckError::UnknownDestination { .. })
        ));
    }

    #[test]
    fn dropped_records_are_done_at_once_and_never_jump_the_queue() {
        let mut acker = Acker::new();
        let (a, released) = acker.track(pos(0), 1).unwrap();
        assert_eq!(released, None);
        assert_eq!(
            acker.track(pos(1), 0).unwrap().1,
            None,
            "record 0 still in flight"
        );
        assert_eq!(acker.ack(a, 0).unwrap(), Some(pos(1)));
        assert_eq!(acker.track(pos(2), 0).unwrap().1, Some(pos(2)));
    }

    #[test]
    fn caller_bugs_are_errors() {
        let mut acker = Acker::new();
        let (a, _) = acker.track(pos(0), 1).unwrap();
        assert_eq!(
            acker.ack(a, 1),
            Err(AckError::UnknownDestination {
                ticket: 0,
                destination: 1,
                fan_out: 1
            })
        );
        acker.track(pos(1), 1).unwrap();
        acker.ack(1, 0).unwrap();
        assert_eq!(
            acker.ack(1, 0),
            Err(AckError::DuplicateAck {
                ticket: 1,
                destination: 0
            })
        );
        acker.ack(a, 0).unwrap();
        assert_eq!(acker.ack(a, 0), Err(AckError::NotInFlight { ticket: 0 }));
        assert_eq!(acker.ack(9, 0), Err(AckError::NotInFlight { ticket: 9 }));
        assert_eq!(
            acker.track(pos(2), 65).unwrap_err(),
            AckError::TooManyDestinations(65)
        );
        acker.track(pos(2), 64).unwrap();
        for d in 0..63 {
            assert_eq!(acker.ack(2, d).unwrap(), None);
        }
        assert_eq!(acker.ack(2, 63).unwrap(), Some(pos(2)));
    }

    /// A pipeline's records (fan-out per record) and an arbitrary order of all their acks.
    fn scenario() -> impl Strategy<Value = (Vec<usize>, Vec<(u64, usize)>)> {
        proptest::collection::vec(0usize..4, 1..40).prop_flat_map(|fan_outs| {
            let acks: Vec<(u64, usize)> = fan_outs
                .iter()
                .enumerate()
                .flat_map(|(t, n)| (0..*n).map(move |d| (t as u64, d)))
                .collect();
            (Just(fan_outs), Just(acks).prop_shuffle())
        })
    }

    #[test]
    fn a_run_is_released_at_its_end_only() {
        let mut acker = Acker::new();
        let (first, _) = acker.track_run(3, pos(2), 1).unwrap();
        let (next, _) = acker.track_run(2, pos(4), 1).unwrap();
        assert_eq!((first, next), (0, 3));
        assert_eq!(acker.ack(0, 0).unwrap(), None, "the run's end is not done");
        assert_eq!(acker.ack(1, 0).unwrap(), None);
        assert_eq!(
            acker.in_flight(),
            3,
            "the done records are dropped all the same"
        );
        assert_eq!(acker.ack(3, 0).unwrap(), None, "waits for record 2");
        assert_eq!(
            acker.ack(2, 0).unwrap(),
            Some(pos(2)),
            "the first run is done"
        );
        assert_eq!(acker.ack(4, 0).unwrap(), Some(pos(4)));
        assert_eq!(acker.in_flight(), 0);
        assert_eq!(
            acker.track_run(0, pos(9), 1).unwrap(),
            (5, None),
            "an empty run tracks nothing"
        );
        assert_eq!(
            acker.track_run(2, pos(6), 0).unwrap(),
            (5, Some(pos(6))),
            "with no destination a run is done at once"
        );
        assert_eq!(acker.in_flight(), 0);
        assert_eq!(
            acker.track_run(1, pos(5), 65).unwrap_err(),
            AckError::TooManyDestinations(65)
        );
    }

    proptest! {
        /// Runs (batches) of records, acked by every destination in any order: only the
        /// position of a run's last record is ever released, only once it and everything
        /// before it are acked, always forward, and the last run's once all are in.
        #[test]
        fn runs_are_released_at_their_ends_in_order_and_never_past_an_unacked_record(
            (runs, destinations, acks) in run_scenario()
        ) {
            let mut acker = Acker::new();
            let mut ends = std::collections::BTreeSet::new();
            let mut total = 0u64;
            for count in &runs {
                total += *count as u64;
                let (first, released) =
                    acker.track_run(*count, pos(total - 1), destinations).unwrap();
                prop_assert_eq!(first, total - *count as u64);
                prop_assert_eq!(released, None);
                ends.insert(total - 1);
            }
            let mut remaining = vec![destinations; total as usize];
            let mut persisted: Option<u64> = None;
            for (ticket, destination) in acks {
                remaining[ticket as usize] -= 1;
                if let Some(p) = acker.ack(ticket, destination).unwrap() {
                    let n = u64::from_be_bytes(p.0.as_slice().try_into().unwrap());
                    prop_assert!(ends.contains(&n), "released {} inside a run", n);
                    prop_assert!(persisted.is_none_or(|prev| n > prev), "moved backwards");
                    prop_assert!(
                        remaining[..=n as usize].iter().all(|r| *r == 0),
                        "released {} with an unacked record at or before it", n
                    );
                    persisted = Some(n);
                }
            }
            prop_assert_eq!(persisted, Some(total - 1));
            prop_assert_eq!(acker.in_flight(), 0);
        }

        /// For any interleaving of destination acks: persisted positions only move forward,
        /// a position is released only when it and everything before it are fully acked,
        /// and once every ack is in, the last position is released.
        #[test]
        fn positions_are_released_in_order_and_never_past_an_unacked_record(
            (fan_outs, acks) in scenario()
        ) {
            let mut acker = Acker::new();
            let mut remaining: Vec<usize> = fan_outs.clone();
            let mut persisted: Option<u64> = None;
            let mut check = |released: Option<Position>, remaining: &[usize]| -> Result<(), TestCaseError> {
                if let Some(p) = released {
                    let n = u64::from_be_bytes(p.0.as_slice().try_into().unwrap());
                    prop_assert!(persisted.is_none_or(|prev| n > prev), "moved backwards");
                    prop_assert!(
                        remaining[..=n as usize].iter().all(|r| *r == 0),
                        "released {} with an unacked record at or before it", n
                    );
                    persisted = Some(n);
                }
                Ok(())
            };
            // Track everything first (the source runs ahead), checking dropped records.
            for (t, n) in fan_outs.iter().enumerate() {
                let (ticket, released) = acker.track(pos(t as u64), *n).unwrap();
                prop_assert_eq!(ticket, t as u64);
                check(released, &remaining)?;
            }
            for (ticket, destination) in acks {
                remaining[ticket as usize] -= 1;
                let released = acker.ack(ticket, destination).unwrap();
                check(released, &remaining)?;
            }
            prop_assert_eq!(persisted, Some(fan_outs.len() as u64 - 1));
            prop_assert_eq!(acker.in_flight(), 0);
        }

        /// Records split into copies (before the fan-out, and again in a destination's
        /// processors) are released only once every copy is acked at every destination,
        /// whatever the order of the acks.
        #[test]
        fn a_split_record_is_released_only_when_every_copy_is(
            (records, acks) in split_scenario()
        ) {
            let mut acker = Acker::new();
            let mut remaining: Vec<u32> = records
                .iter()
                .map(|(copies, extra)| extra.iter().map(|e| copies * (1 + e)).sum())
                .collect();
            for (t, (copies, extra)) in records.iter().enumerate() {
                let (ticket, released) = acker.track(pos(t as u64), extra.len()).unwrap();
                prop_assert_eq!(released, None);
                // The splits happen before any copy reaches a destination.
                acker.expand(ticket, None, copies - 1).unwrap();
                for (d, e) in extra.iter().enumerate() {
                    for _ in 0..*copies {
                        acker.expand(ticket, Some(d), *e).unwrap();
                    }
                }
            }
            let mut persisted: Option<u64> = None;
            for (ticket, destination) in acks {
                remaining[ticket as usize] -= 1;
                if let Some(p) = acker.ack(ticket, destination).unwrap() {
                    let n = u64::from_be_bytes(p.0.as_slice().try_into().unwrap());
                    prop_assert!(persisted.is_none_or(|prev| n > prev), "moved backwards");
                    prop_assert!(
                        remaining[..=n as usize].iter().all(|r| *r == 0),
                        "released {} with a copy unacked at or before it", n
                    );
                    persisted = Some(n);
                }
            }
            prop_assert_eq!(persisted, Some(records.len() as u64 - 1));
            prop_assert_eq!(acker.in_flight(), 0);
        }
    }

    /// Run lengths (1 to 6 records, 1 to 8 runs), the destination count (1 to 3), and every
    /// ack the records need (ticket, destination), shuffled.
    fn run_scenario() -> impl Strategy<Value = (Vec<usize>, usize, Vec<(u64, usize)>)> {
        (proptest::collection::vec(1usize..7, 1..9), 1usize..4).prop_flat_map(
            |(runs, destinations)| {
                let total: usize = runs.iter().sum();
                let acks: Vec<(u64, usize)> = (0..total as u64)
                    .flat_map(|t| (0..destinations).map(move |d| (t, d)))
                    .collect();
                (Just(runs), Just(destinations), Just(acks).prop_shuffle())
            },
        )
    }

    /// A record: copies made before the fan-out, and the extra copies each destination's
    /// processors make of each copy.
    type Split = (u32, Vec<u32>);

    /// Records as [`Split`]s, and every ack they need (ticket, destination), shuffled.
    fn split_scenario() -> impl Strategy<Value = (Vec<Split>, Vec<(u64, usize)>)> {
        let record = (1u32..4, proptest::collection::vec(0u32..3, 1..4));
        proptest::collection::vec(record, 1..20).prop_flat_map(|records| {
            let acks: Vec<(u64, usize)> = records
                .iter()
                .enumerate()
                .flat_map(|(t, (copies, extra))| {
                    extra.iter().enumerate().flat_map(move |(d, e)| {
                        std::iter::repeat_n((t as u64, d), (copies * (1 + e)) as usize)
                    })
                })
                .collect();
            (Just(records), Just(acks).prop_shuffle())
        })
    }
}
