//! The one way monkctl runs work over many tenants on several threads, and the one `--jobs`
//! policy.
//!
//! [`ordered`] takes items from a feed (a list, or the registry read a page at a time), runs them
//! on a fixed number of threads and hands each outcome back on the calling thread, in the
//! feed's order, as soon as it and every earlier one are done. Memory holds the items in flight
//! (two per thread waiting, plus outcomes waiting for an earlier one), never the whole fleet.
//! It stops starting items on Ctrl-C (`core::interrupted`) or, when asked, after the first
//! failure; the items not started come back as `None`, so every caller reports them.
//!
//! `query` keeps its own loop on the same policy: it streams a tenant's rows while that tenant
//! is still being read, which an outcome-per-item pool cannot do in bounded memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::core::progress::Progress;
use crate::core::Result;

/// What a run's threads mostly wait for, which decides how many threads `--jobs` defaults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Waiting for locks, syncs or a server (migrate, query): four threads per core, at most
    /// 64. Measured on 2 cores, 300 tenants migrated: 4.8 s with 2 threads, 1.0 s with 8.
    Waiting,
    /// Reading or writing whole files (extract, doctor, building new tenants): one thread per
    /// core, at most 4; more only compete for the same disk.
    Files,
}

/// The number of threads a run of this kind uses when `--jobs` is not given.
pub fn default_jobs(work: Work) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match work {
        Work::Waiting => cores.saturating_mul(4).min(64),
        Work::Files => cores.min(4),
    }
}

/// `--jobs` as given, or the default for this kind of work. The command line refuses 0 (see
/// `cli::jobs`), so a value here is at least 1; it is clamped again for callers in the library.
pub fn jobs(given: Option<usize>, work: Work) -> usize {
    given.unwrap_or_else(|| default_jobs(work)).max(1)
}

/// How a run goes.
pub struct Run<'a, I> {
    /// Threads; clamped to at least 1. A caller that knows how many items come clamps it to that.
    pub jobs: usize,
    /// Start no item after the first outcome that `failed` calls a failure.
    pub fail_fast: bool,
    /// Told of each item as it finishes (in the order they finish).
    pub progress: &'a dyn Progress,
    /// The name `progress` shows for an item.
    pub name: fn(&I) -> &str,
}

/// Runs `work` over the items `next` yields, on `run.jobs` threads, each thread with its own
/// state from `init` (made on that thread, such as a connection opened on first need). Each
/// item comes back to `emit` on this thread, in the feed's order, with `Some(outcome)`, or with
/// `None` when the run stopped before it started (Ctrl-C, or a failure with `fail_fast`).
/// An error from `next` stops the run and is returned once the items in flight are done.
pub fn ordered<I: Send, T: Send, W>(
    run: &Run<'_, I>,
    next: &mut dyn FnMut() -> Result<Option<I>>,
    init: &(dyn Fn() -> W + Sync),
    work: &(dyn Fn(&mut W, &I) -> T + Sync),
    failed: &(dyn Fn(&T) -> bool + Sync),
    emit: &mut dyn FnMut(I, Option<T>),
) -> Result<()> {
    use mpsc::TrySendError;
    let stop = AtomicBool::new(false);
    let _stoppable = crate::core::Stoppable::begin();
    let jobs = run.jobs.max(1);
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, I)>(jobs * 2);
    let work_rx = Mutex::new(work_rx);
    // `None`: not started. A panic in `work` is kept and raised again on this thread once the
    // other threads are done, so that the item is still counted and nothing waits for it.
    type Done<I, T> = (usize, I, Option<T>);
    let (done_tx, done_rx) = mpsc::channel::<Done<I, T>>();
    let panicked: Mutex<Option<Box<dyn std::any::Any + Send>>> = Mutex::new(None);
    let mut feed_error = None;
    let mut held: Option<I> = None;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let (work_rx, stop, panicked) = (&work_rx, &stop, &panicked);
            s.spawn(move || {
                let mut state = init();
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((i, item)) = job else { break };
                    if crate::core::interrupted() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    let r = if stop.load(Ordering::SeqCst) {
                        None
                    } else {
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            work(&mut state, &item)
                        })) {
                            Ok(r) => Some(r),
                            Err(p) => {
                                stop.store(true, Ordering::SeqCst);
                                if let Ok(mut slot) = panicked.lock() {
                                    slot.get_or_insert(p);
                                }
                                None
                            }
                        }
                    };
                    if run.fail_fast && r.as_ref().is_some_and(failed) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if done_tx.send((i, item, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut work_tx = Some(work_tx);
        let (mut sent, mut received, mut next_out) = (0usize, 0usize, 0usize);
        let mut ready: BTreeMap<usize, (I, Option<T>)> = BTreeMap::new();
        loop {
            // Keep the threads' queue full; the rest of the feed stays where it is.
            while let Some(tx) = &work_tx {
                if crate::core::interrupted() {
                    stop.store(true, Ordering::SeqCst);
                }
                if stop.load(Ordering::SeqCst) {
                    work_tx = None;
                    break;
                }
                let item = match held.take() {
                    Some(item) => Some(item),
                    None => match next() {
                        Ok(item) => item,
                        Err(e) => {
                            // The items already handed out still run.
                            feed_error = Some(e);
                            None
                        }
                    },
                };
                let Some(item) = item else {
                    work_tx = None;
                    break;
                };
                match tx.try_send((sent, item)) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full((_, item))) => {
                        held = Some(item);
                        break;
                    }
                    Err(TrySendError::Disconnected((_, item))) => {
                        held = Some(item);
                        work_tx = None;
                    }
                }
            }
            if work_tx.is_none() && received == sent {
                break;
            }
            let Ok((i, item, r)) = done_rx.recv() else {
                break;
            };
            received += 1;
            run.progress.advance(1, (run.name)(&item));
            ready.insert(i, (item, r));
            while let Some((item, r)) = ready.remove(&next_out) {
                next_out += 1;
                emit(item, r);
            }
        }
    });
    if let Some(p) = panicked.into_inner().ok().flatten() {
        std::panic::resume_unwind(p);
    }
    if let Some(e) = feed_error {
        return Err(e);
    }
    // Stopped early: the items never handed to a thread are not started either.
    if stop.load(Ordering::SeqCst) {
        if let Some(item) = held {
            emit(item, None);
        }
        while let Some(item) = next()? {
            emit(item, None);
        }
    }
    Ok(())
}

/// `ordered` over a list, with no per-thread state and no progress: the outcomes in the list's
/// order, `None` for the items a Ctrl-C left unstarted.
pub fn map<I: Sync, T: Send>(
    items: &[I],
    jobs: usize,
    work: impl Fn(&I) -> T + Sync,
) -> Vec<Option<T>> {
    let mut out = Vec::with_capacity(items.len());
    let mut feed = items.iter();
    let run = Run {
        jobs: jobs.clamp(1, items.len().max(1)),
        fail_fast: false,
        progress: &crate::core::progress::Silent,
        name: |_: &&I| "",
    };
    // The feed is a list, so it cannot fail.
    let _ = ordered(
        &run,
        &mut || Ok(feed.next()),
        &|| (),
        &|_, item: &&I| work(item),
        &|_| false,
        &mut |_, r| out.push(r),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Error;
    use std::sync::atomic::AtomicUsize;

    fn quiet<I>() -> Run<'static, I> {
        Run {
            jobs: 4,
            fail_fast: false,
            progress: &crate::core::progress::Silent,
            name: |_| "",
        }
    }

    #[test]
    fn outcomes_come_back_in_the_feed_order_whatever_order_they_finish_in() {
        let items: Vec<u64> = (0..200).collect();
        // Later items finish first.
        let out = map(&items, 8, |&i| {
            std::thread::sleep(std::time::Duration::from_micros(200 - i));
            i * 2
        });
        assert_eq!(
            out,
            items.iter().map(|i| Some(i * 2)).collect::<Vec<_>>(),
            "every item, in order"
        );
    }

    #[test]
    fn fail_fast_starts_nothing_after_the_first_failure_and_reports_the_rest_unstarted() {
        let mut feed = 0..100u32;
        let run = Run {
            jobs: 1,
            fail_fast: true,
            ..quiet()
        };
        let mut seen = Vec::new();
        ordered(
            &run,
            &mut || Ok(feed.next()),
            &|| (),
            &|_, &i| if i == 3 { Err(i) } else { Ok(i) },
            &|r: &std::result::Result<u32, u32>| r.is_err(),
            &mut |i, r| seen.push((i, r)),
        )
        .unwrap();
        assert_eq!(seen.len(), 100, "every item is reported");
        assert_eq!(seen[3], (3, Some(Err(3))));
        assert!(seen[..3].iter().all(|(_, r)| matches!(r, Some(Ok(_)))));
        assert!(
            seen[4..].iter().all(|(_, r)| r.is_none()),
            "one thread: nothing after the failure ran"
        );
    }

    #[test]
    fn each_thread_keeps_its_own_state_and_the_threads_are_bounded() {
        let inits = AtomicUsize::new(0);
        let mut feed = 0..50u32;
        let mut n = 0;
        ordered(
            &Run { jobs: 3, ..quiet() },
            &mut || Ok(feed.next()),
            &|| {
                inits.fetch_add(1, Ordering::SeqCst);
                0u32
            },
            &|uses: &mut u32, _| {
                *uses += 1;
                *uses
            },
            &|_| false,
            &mut |_, _| n += 1,
        )
        .unwrap();
        assert_eq!(n, 50);
        assert_eq!(inits.load(Ordering::SeqCst), 3, "one state per thread");
    }

    #[test]
    fn a_feed_error_is_returned_after_the_items_in_flight() {
        let mut i = 0;
        let mut done = 0;
        let e = ordered(
            &quiet::<u32>(),
            &mut || {
                i += 1;
                if i > 5 {
                    Err(Error::Other("registry went away".into()))
                } else {
                    Ok(Some(i))
                }
            },
            &|| (),
            &|_, &i| i,
            &|_| false,
            &mut |_, r| {
                assert!(r.is_some());
                done += 1
            },
        )
        .unwrap_err();
        assert_eq!(done, 5, "the items before the error were done and reported");
        assert!(e.to_string().contains("registry went away"));
    }

    #[test]
    fn a_panic_in_one_item_is_raised_on_the_caller_without_a_hang() {
        let r = std::panic::catch_unwind(|| {
            map(&[1, 2, 3, 4, 5, 6], 2, |&i| {
                if i == 2 {
                    panic!("boom");
                }
                i
            })
        });
        assert!(r.is_err());
    }

    #[test]
    fn the_default_jobs_follow_the_kind_of_work() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_jobs(Work::Waiting), (cores * 4).min(64));
        assert_eq!(default_jobs(Work::Files), cores.min(4));
        assert_eq!(jobs(Some(7), Work::Files), 7);
        assert_eq!(jobs(None, Work::Waiting), default_jobs(Work::Waiting));
    }
}
