//! Group commit: the changes of many requests in one database transaction, each still
//! all-or-nothing, each answered only once the transaction holding it has committed.
//!
//! A commit is the dear part of a small write: SQLite writes every page the transaction touched to
//! its log (the accounts' page, the outbox's, each index's), PostgreSQL flushes its log. Requests
//! that arrive while a transaction is being written wait in a bounded queue; the writer task takes
//! all of them (up to [`MAX_JOBS`]) into the next transaction. A job that may fail after writing
//! runs in a savepoint ([`Guard::Savepoint`]), so it is rolled back alone and hears its error while
//! the others commit; one that writes nothing before it knows it will succeed runs without
//! ([`Guard::Transaction`]), and a fault halfway through it spoils the turn instead. Under light
//! load a batch is one request and costs what a transaction of its own did; under heavy load the
//! commit is shared.
//!
//! Owns the queue and the writer task. Jobs are store functions that take a [`Write`]; they must
//! not begin a transaction of their own (they would wait on the writer lock this task holds).

use anyhow::{anyhow, Result};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::{Store, Write};

/// Jobs in one transaction at most: enough to share a commit widely, few enough that the first
/// job's wait for the commit stays short.
pub const MAX_JOBS: usize = 256;

/// Requests waiting for the writer; a full queue makes callers wait (backpressure, no growth).
const QUEUE: usize = 4_096;

/// A job as the writer runs it: its work on the shared transaction, then its answer once the fate
/// of that transaction is known (`Ok` only after commit).
type Job = Box<dyn for<'a> FnOnce(&'a mut Write) -> BoxFuture<'a, Finished> + Send>;

/// What a job left once its work ran: how to answer it when the transaction ends, or the error
/// that spoiled the whole transaction (an unguarded job failed halfway).
type Finished = Result<Answer, String>;

/// How a job that ran is answered once its transaction has ended (`Ok` once it has committed).
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// How a job's failure is kept from the other jobs of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// In a savepoint: a failing job is rolled back alone. For work that may fail after writing
    /// (an update over a customer's allowance). Two statements more per job.
    Savepoint,
    /// None: the job writes nothing before it knows it will succeed, so only a database fault can
    /// fail it halfway, and that fails the whole transaction (every job of it hears the error;
    /// nothing of any is applied).
    Transaction,
}

/// The handle callers queue jobs through; cloned with the [`Store`].
#[derive(Clone, Debug)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the writer task for `store` (which must not carry a batcher itself: the task ends
    /// when the last handle to this one is dropped).
    pub(crate) fn start(store: Store) -> Batcher {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, queue));
        Batcher { jobs }
    }
}

impl Store {
    /// Runs `work` in a shared write transaction and returns its result once that transaction
    /// has committed. How an error from `work` is kept from the others is `guard`'s to say.
    pub(crate) async fn batched<T, F>(&self, guard: Guard, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Write) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let Some(batcher) = &self.batcher else {
            // Group commit is off (`database.group_commit`): a transaction of its own.
            let mut w = self.write().await?;
            let value = work(&mut w).await?;
            w.commit().await?;
            return Ok(value);
        };
        let (answer, answered) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |w: &mut Write| -> BoxFuture<'_, Finished> {
            Box::pin(async move {
                // A fault the job's own changes cannot be taken back from spoils the turn.
                let done = match guard {
                    Guard::Savepoint => in_savepoint(w, work).await,
                    Guard::Transaction => work(w).await.map_err(Fault::Spoiled),
                };
                let done = match done {
                    Ok(value) => Ok(value),
                    Err(Fault::RolledBack(e)) => Err(e),
                    Err(Fault::Spoiled(e)) => {
                        let spoiled = format!("{e:#}");
                        let _ = answer.send(Err(e));
                        return Err(spoiled);
                    }
                };
                match done {
                    Ok(value) => Ok(Box::new(move |outcome: Result<(), String>| {
                        let _ = answer.send(outcome.map(|()| value).map_err(|e| anyhow!("{e}")));
                    }) as Answer),
                    Err(e) => {
                        let _ = answer.send(Err(e));
                        Ok(Box::new(|_| {}) as Answer)
                    }
                }
            })
        });
        batcher.jobs.send(job).await.map_err(|_| anyhow!("the store's writer has stopped"))?;
        answered.await.map_err(|_| anyhow!("not applied: the store's writer could not run it (see the server log)"))?
    }
}

/// How a job failed.
enum Fault {
    /// Its changes were taken back; the transaction goes on without them.
    RolledBack(anyhow::Error),
    /// Its changes may be half there: the whole transaction must not commit.
    Spoiled(anyhow::Error),
}

/// Runs `work` between a savepoint and its release, rolling back to it when `work` fails. A
/// failure of the savepoint statements themselves spoils the transaction.
async fn in_savepoint<T, F>(w: &mut Write, work: F) -> Result<T, Fault>
where
    F: for<'a> FnOnce(&'a mut Write) -> BoxFuture<'a, Result<T>>,
{
    let spoiled = |e: sqlx::Error| Fault::Spoiled(e.into());
    sqlx::query("SAVEPOINT job").execute(&mut **w).await.map_err(spoiled)?;
    match work(w).await {
        Ok(value) => {
            sqlx::query("RELEASE SAVEPOINT job").execute(&mut **w).await.map_err(spoiled)?;
            Ok(value)
        }
        Err(e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT job").execute(&mut **w).await.map_err(spoiled)?;
            sqlx::query("RELEASE SAVEPOINT job").execute(&mut **w).await.map_err(spoiled)?;
            Err(Fault::RolledBack(e))
        }
    }
}

/// One transaction: runs `jobs` in order and commits. A job that spoils the transaction ends the
/// turn; the jobs after it stay in `jobs`, untouched, for the next.
async fn turn(store: &Store, jobs: &mut Vec<Job>, finished: &mut Vec<Answer>) -> Result<()> {
    let mut w = match store.write().await {
        Ok(w) => w,
        Err(e) => {
            // Nothing ran (the transaction could not begin): the waiting jobs are dropped with
            // their answer channels, and their callers hear that the writer could not run them.
            jobs.clear();
            return Err(e);
        }
    };
    let mut waiting = std::mem::take(jobs).into_iter();
    for job in waiting.by_ref() {
        match job(&mut w).await {
            Ok(answer) => finished.push(answer),
            Err(spoiled) => {
                jobs.extend(waiting);
                // At once, not on drop: the next turn begins right after this one.
                if let Err(e) = w.rollback().await {
                    tracing::warn!(error = %e, "rolling back a spoiled group commit");
                }
                anyhow::bail!("another change in the same transaction failed: {spoiled}");
            }
        }
    }
    w.commit().await
}

/// The writer task: one transaction per turn, holding every job that is waiting.
async fn run(store: Store, mut queue: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_JOBS);
    loop {
        // Jobs a spoiled transaction never reached go first into the next one.
        if jobs.is_empty() && queue.recv_many(&mut jobs, MAX_JOBS).await == 0 {
            return;
        }
        while jobs.len() < MAX_JOBS {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut finished: Vec<Answer> = Vec::with_capacity(jobs.len());
        // A spoiled turn leaves the jobs it did not reach in `jobs`, for the next turn (also when
        // the spoiler was the turn's first job and nothing else ran).
        let outcome = turn(&store, &mut jobs, &mut finished).await;
        let outcome = outcome.map_err(|e| {
            tracing::warn!(error = %e, jobs = finished.len(), backend = store.backend.name(), "a group commit failed");
            e.to_string()
        });
        for f in finished {
            f(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs that fail are rolled back alone; the rest of their transaction commits, and every
    /// caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_is_rolled_back_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("hodi.db").display())).await.expect("open");
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .batched(Guard::Savepoint, move |w: &mut Write| -> BoxFuture<'_, Result<usize>> {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'batched', 0)")
                                .bind(format!("org_{i}"))
                                .execute(&mut **w)
                                .await?;
                            // Half fail after writing: what they wrote must not stay.
                            anyhow::ensure!(i % 2 == 0, "job {i} refuses");
                            Ok(i)
                        })
                    })
                    .await
            }));
        }
        let mut ok = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.expect("task") {
                Ok(n) => {
                    assert_eq!(n, i);
                    ok += 1;
                }
                Err(e) => assert!(i % 2 == 1 && e.to_string().contains("refuses"), "{i}: {e}"),
            }
        }
        assert_eq!(ok, 100);
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM orgs").fetch_all(store.pool()).await.expect("read");
        assert_eq!(ids.len(), 100, "only the jobs that succeeded left rows");
        assert!(ids.iter().all(|id| id.trim_start_matches("org_").parse::<usize>().expect("n") % 2 == 0));
    }

    /// An unguarded job that fails halfway spoils its whole transaction: every job of it hears an
    /// error and nothing of any is stored; what callers were told matches what is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unguarded_failure_fails_its_whole_transaction_and_answers_match_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("hodi.db").display())).await.expect("open");
        let mut tasks = Vec::new();
        for i in 0..300 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .batched(Guard::Transaction, move |w: &mut Write| -> BoxFuture<'_, Result<usize>> {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'batched', 0)")
                                .bind(format!("org_{i}"))
                                .execute(&mut **w)
                                .await?;
                            anyhow::ensure!(i % 50 != 7, "job {i} fails after writing");
                            Ok(i)
                        })
                    })
                    .await
            }));
        }
        let mut told_ok = std::collections::BTreeSet::new();
        let mut spoiled = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.expect("task") {
                Ok(n) => {
                    assert_eq!(n, i);
                    told_ok.insert(format!("org_{i}"));
                }
                Err(e) if i % 50 == 7 => assert!(e.to_string().contains("fails after writing"), "{e}"),
                Err(e) => {
                    assert!(e.to_string().contains("another change in the same transaction failed"), "{i}: {e}");
                    spoiled += 1;
                }
            }
        }
        let stored: std::collections::BTreeSet<String> = sqlx::query_scalar("SELECT id FROM orgs")
            .fetch_all(store.pool())
            .await
            .expect("read")
            .into_iter()
            .collect();
        assert_eq!(stored, told_ok, "exactly the jobs told they succeeded are stored");
        assert!(told_ok.len() + spoiled + 6 == 300);
    }
}
