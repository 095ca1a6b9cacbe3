//! Group writes: jobs that queue while earlier ones are being written go to the database
//! together, one statement (and one commit) for the lot, instead of one round trip each.
//!
//! No timer and no background task: a caller queues its job, then waits for its answer or for a
//! free lane, whichever comes first. Whoever gets a lane takes every job queued by then (its own
//! among them, unless an earlier group took it) and writes them in a task of their own, so a
//! caller that goes away (a dropped request) never cancels a write others wait for; its own job,
//! when no group has taken it yet, is dropped rather than written. A lone job finds a lane free
//! and goes at once; under load, a group gathers while the lanes are busy.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

/// Queued jobs of type `J`, each answered with an `R`, written by at most `lanes` groups at once.
pub(crate) struct Group<J, R> {
    queue: Mutex<VecDeque<Queued<J, R>>>,
    lanes: Arc<Semaphore>,
    /// The most jobs one group takes.
    most: usize,
}

struct Queued<J, R> {
    job: J,
    answer: oneshot::Sender<R>,
}

impl<J: Send + 'static, R: Send + 'static> Group<J, R> {
    pub(crate) fn new(lanes: usize, most: usize) -> Self {
        Group {
            queue: Mutex::new(VecDeque::new()),
            lanes: Arc::new(Semaphore::new(lanes.max(1))),
            most: most.max(1),
        }
    }

    /// Queues `job` and returns its answer; `write` writes a group of jobs (this one's or
    /// others') and answers each, in order. `None` when the write of its group ended without
    /// answering it (it panicked, or answered too few).
    pub(crate) async fn submit<W, F>(&self, job: J, write: W) -> Option<R>
    where
        W: Fn(Vec<J>) -> F,
        F: Future<Output = Vec<R>> + Send + 'static,
    {
        let (sender, mut answer) = oneshot::channel();
        self.lock().push_back(Queued {
            job,
            answer: sender,
        });
        // Whether this job may still be queued: until then, this caller competes for a lane.
        let mut queued = true;
        loop {
            tokio::select! {
                biased;
                answer = &mut answer => return answer.ok(),
                lane = self.lanes.clone().acquire_owned(), if queued => {
                    let Ok(lane) = lane else {
                        // The semaphore is never closed; wait for the answer all the same.
                        queued = false;
                        continue;
                    };
                    let (group, left) = self.take();
                    // An empty queue holds this job no more: it is being written, or written.
                    queued = left > 0;
                    if group.is_empty() {
                        continue;
                    }
                    let (jobs, answers): (Vec<J>, Vec<oneshot::Sender<R>>) =
                        group.into_iter().map(|q| (q.job, q.answer)).unzip();
                    let written = write(jobs);
                    tokio::spawn(async move {
                        let results = written.await;
                        for (answer, result) in answers.into_iter().zip(results) {
                            // A caller that went away needs no answer.
                            let _ = answer.send(result);
                        }
                        drop(lane);
                    });
                }
            }
        }
    }

    /// The first jobs queued, at most [`Self::most`], skipping those whose caller went away
    /// (a write it no longer waits for would land at some unrelated later moment); and how
    /// many are left.
    fn take(&self) -> (Vec<Queued<J, R>>, usize) {
        let mut queue = self.lock();
        let mut group = Vec::with_capacity(queue.len().min(self.most));
        while group.len() < self.most {
            match queue.pop_front() {
                Some(queued) if queued.answer.is_closed() => {}
                Some(queued) => group.push(queued),
                None => break,
            }
        }
        (group, queue.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued<J, R>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// `submit` answered in time: a group that never answers fails the test instead of hanging it.
    async fn answered<T>(submit: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), submit)
            .await
            .expect("answered in time")
    }

    #[tokio::test]
    async fn a_lone_job_goes_at_once() {
        let group: Group<u32, u32> = Group::new(2, 8);
        let answer =
            answered(group.submit(
                7,
                |jobs| async move { jobs.iter().map(|j| j * 2).collect() },
            ))
            .await;
        assert_eq!(answer, Some(14));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_queued_behind_a_busy_lane_are_written_together_and_each_answered() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(1, 64));
        let writes = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..50u32)
            .map(|n| {
                let (group, writes, sizes) = (group.clone(), writes.clone(), sizes.clone());
                tokio::spawn(async move {
                    answered(group.submit(n, move |jobs| {
                        let (writes, sizes) = (writes.clone(), sizes.clone());
                        async move {
                            writes.fetch_add(1, Ordering::SeqCst);
                            sizes.lock().unwrap().push(jobs.len());
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            jobs.iter().map(|j| j + 1000).collect()
                        }
                    }))
                    .await
                })
            })
            .collect();
        for (n, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), Some(n as u32 + 1000));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50, "every job written once");
        assert!(
            writes.load(Ordering::SeqCst) < 50,
            "jobs that queued behind the lane shared writes: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_write_that_answers_too_few_leaves_the_rest_unanswered_not_waiting() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(1, 8));
        let answer = answered(group.submit(1, |_| async { Vec::new() })).await;
        assert_eq!(answer, None);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_write() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new(1, 8));
        let written = Arc::new(AtomicUsize::new(0));
        let counter = written.clone();
        let submit = group.submit(1, move |jobs| {
            let counter = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                counter.fetch_add(jobs.len(), Ordering::SeqCst);
                jobs
            }
        });
        // Dropped after the write started.
        let _ = tokio::time::timeout(Duration::from_millis(5), submit).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(written.load(Ordering::SeqCst), 1);
    }
}
