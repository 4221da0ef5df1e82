//! The node's database (R-OPS-2): the jobs its users submitted, their events
//! and their results, in SQLite under the data directory.
//!
//! The requester's whole state for a job is one [`JobRecord`], written after
//! every step, so a node killed at any point restarts with each job as it was
//! after its last step. Records are JSON: readable with the `sqlite3` tool
//! and served as they are by the API.

use std::path::Path;
use std::sync::Mutex;

use protocol::id::{JobId, NodeId};
use protocol::requester::{JobRecord, RequesterEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database record: {0}")]
    Json(#[from] serde_json::Error),
}

/// A result a compute node reported for one of this node's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRow {
    pub job_id: String,
    pub execution_id: u64,
    pub node: String,
    pub result_cid: String,
    pub exit_code: i32,
    /// Where the results can be fetched (iroh addresses, JSON).
    pub providers: Vec<String>,
    /// The results are in this node's store.
    pub fetched: bool,
    /// Why this node will not fetch them (over `--max-result-size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One step of a job, for `skrei job describe` and progress lines.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub at_ms: u64,
    pub event: serde_json::Value,
}

/// The database; shared by the driver and the API.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    submitted_at_ms INTEGER NOT NULL,
    terminal INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_at_ms);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL,
    execution_id INTEGER NOT NULL,
    node TEXT NOT NULL,
    result_cid TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    providers TEXT NOT NULL,
    fetched INTEGER NOT NULL,
    PRIMARY KEY (job_id, execution_id)
);
CREATE TABLE IF NOT EXISTS pulled_images (
    reference TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL
);
";

/// An image this node pulled (issue 16): only these are ever pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The reference it was pulled by, as the job named it.
    pub reference: String,
    /// The engine's id.
    pub image_id: String,
    /// Bytes it takes in the engine.
    pub bytes: u64,
    /// When a job last used it.
    pub last_used_ms: u64,
}

impl Db {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let conn = Connection::open(path)?;
        // WAL with NORMAL sync: a commit survives a killed process (the
        // only crash R-OPS-2 talks about) at a fraction of FULL's cost.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Added after the first release: databases made before lack it.
        let has_refused = conn
            .prepare("SELECT 1 FROM pragma_table_info('results') WHERE name = 'refused'")?
            .exists([])?;
        if !has_refused {
            conn.execute_batch("ALTER TABLE results ADD COLUMN refused TEXT")?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (each statement is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a job's record, and the event that changed it, in one transaction.
    pub fn save_job(
        &self,
        record: &JobRecord,
        event: Option<(u64, &RequesterEvent)>,
    ) -> Result<(), DbError> {
        let json = serde_json::to_string(record)?;
        let event = event
            .map(|(at, e)| serde_json::to_string(e).map(|j| (at, j)))
            .transpose()?;
        let job_id = record.job_id().to_string();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO jobs (job_id, submitted_at_ms, terminal, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (job_id) DO UPDATE SET terminal = ?3, record = ?4",
            params![
                job_id,
                record.announce.submitted_at_ms as i64,
                record.state.is_terminal(),
                json
            ],
        )?;
        if let Some((at_ms, event)) = event {
            tx.execute(
                "INSERT INTO events (job_id, at_ms, event) VALUES (?1, ?2, ?3)",
                params![job_id, at_ms as i64, event],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A job's record.
    pub fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>, DbError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM jobs WHERE job_id = ?1",
                params![job_id.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// The newest `limit` jobs, newest first.
    pub fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT record FROM jobs ORDER BY submitted_at_ms DESC, job_id LIMIT ?1")?;
        let rows = stmt.query_map(params![limit as i64], |row| row.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    /// How many jobs are in each state (`bidding`, `running`, `completed`,
    /// `failed`, `cancelled`), counted by SQLite rather than by reading
    /// every record.
    pub fn job_counts(&self) -> Result<Vec<(String, u64)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT json_extract(record, '$.state.state'), COUNT(*) FROM jobs GROUP BY 1",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Jobs that have not ended, for the requester to resume after a restart.
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM jobs WHERE terminal = 0")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    /// A job's events, oldest first.
    /// Bids received in events after `after` (an event's sequence number),
    /// and the last event's number: counted a slice at a time by the
    /// dashboard's metric history.
    pub fn bids_received_since(&self, after: u64) -> Result<(u64, u64), DbError> {
        let conn = self.conn();
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let count: i64 = conn.query_row(
            "SELECT COUNT(*) FROM events WHERE seq > ?1 AND seq <= ?2 \
             AND json_extract(event, '$.event') = 'bid_received'",
            params![after as i64, last],
            |r| r.get(0),
        )?;
        Ok((count as u64, last as u64))
    }

    pub fn events(&self, job_id: &JobId) -> Result<Vec<EventRow>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT at_ms, event FROM events WHERE job_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![job_id.to_string()], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, json) = row?;
            out.push(EventRow {
                at_ms: at_ms as u64,
                event: serde_json::from_str(&json)?,
            });
        }
        Ok(out)
    }

    /// Records a result as reported (not fetched yet). A repeat changes nothing.
    pub fn add_result(
        &self,
        job_id: &JobId,
        execution_id: u64,
        node: &NodeId,
        result_cid: &str,
        exit_code: i32,
        providers: &[String],
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO results
             (job_id, execution_id, node, result_cid, exit_code, providers, fetched)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                job_id.to_string(),
                execution_id as i64,
                node.to_string(),
                result_cid,
                exit_code,
                serde_json::to_string(providers)?
            ],
        )?;
        Ok(())
    }

    /// Marks a result as present in this node's store.
    pub fn set_fetched(&self, job_id: &JobId, execution_id: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE results SET fetched = 1 WHERE job_id = ?1 AND execution_id = ?2",
            params![job_id.to_string(), execution_id as i64],
        )?;
        Ok(())
    }

    /// Records why this node will not fetch a result.
    pub fn set_refused(
        &self,
        job_id: &JobId,
        execution_id: u64,
        reason: &str,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE results SET refused = ?3 WHERE job_id = ?1 AND execution_id = ?2",
            params![job_id.to_string(), execution_id as i64, reason],
        )?;
        Ok(())
    }

    /// Records an image this node pulled, or that a job used again.
    pub fn image_pulled(&self, image: &PulledImage) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO pulled_images (reference, image_id, bytes, last_used_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (reference) DO UPDATE SET image_id = ?2, bytes = ?3, last_used_ms = ?4",
            params![
                image.reference,
                image.image_id,
                i64::try_from(image.bytes).unwrap_or(i64::MAX),
                i64::try_from(image.last_used_ms).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }

    /// Marks the images with engine id `image_id` this node pulled as used
    /// now; images it did not pull stay unrecorded.
    pub fn image_used(&self, image_id: &str, now_ms: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE pulled_images SET last_used_ms = ?2 WHERE image_id = ?1",
            params![image_id, i64::try_from(now_ms).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// The images this node pulled, least recently used first.
    pub fn pulled_images(&self) -> Result<Vec<PulledImage>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT reference, image_id, bytes, last_used_ms FROM pulled_images
             ORDER BY last_used_ms, reference",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(PulledImage {
                reference: row.get(0)?,
                image_id: row.get(1)?,
                bytes: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                last_used_ms: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets a pulled image (it was removed from the engine).
    pub fn image_removed(&self, reference: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM pulled_images WHERE reference = ?1",
            params![reference],
        )?;
        Ok(())
    }

    /// A job's results, by execution.
    pub fn results(&self, job_id: &JobId) -> Result<Vec<ResultRow>, DbError> {
        self.result_rows(
            "SELECT job_id, execution_id, node, result_cid, exit_code, providers, fetched,
             refused FROM results WHERE job_id = ?1 ORDER BY execution_id",
            Some(job_id.to_string()),
        )
    }

    /// Results reported but not yet in this node's store.
    pub fn unfetched_results(&self) -> Result<Vec<ResultRow>, DbError> {
        self.result_rows(
            "SELECT job_id, execution_id, node, result_cid, exit_code, providers, fetched,
             refused FROM results WHERE fetched = 0 AND refused IS NULL",
            None,
        )
    }

    fn result_rows(&self, sql: &str, job: Option<String>) -> Result<Vec<ResultRow>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let map = |row: &rusqlite::Row<'_>| {
            Ok((
                ResultRow {
                    job_id: row.get(0)?,
                    execution_id: row.get::<_, i64>(1)? as u64,
                    node: row.get(2)?,
                    result_cid: row.get(3)?,
                    exit_code: row.get(4)?,
                    providers: Vec::new(),
                    fetched: row.get(6)?,
                    refused: row.get(7)?,
                },
                row.get::<_, String>(5)?,
            ))
        };
        let rows = match job {
            Some(job) => stmt.query_map(params![job], map)?.collect::<Vec<_>>(),
            None => stmt.query_map([], map)?.collect::<Vec<_>>(),
        };
        let mut out = Vec::new();
        for row in rows {
            let (mut result, providers) = row?;
            result.providers = serde_json::from_str(&providers)?;
            out.push(result);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::id::NodeKey;
    use protocol::job::JobSpec;
    use protocol::requester::{JobState, Requester, RequesterConfig};

    fn record() -> JobRecord {
        let me = NodeKey::from_secret_bytes([1; 32]).node_id();
        let mut r = Requester::new(RequesterConfig::new(me, 1));
        let spec = JobSpec::parse(
            "Type: batch\nCount: 1\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      \
             Params:\n        Image: busybox\n",
        )
        .unwrap();
        let id = r.submit(0, spec, 5, vec![]).unwrap();
        r.job(&id).unwrap().clone()
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let mut rec = record();
        let id = rec.job_id();
        {
            let db = Db::open(&path).unwrap();
            db.save_job(&rec, Some((1, &RequesterEvent::Announced)))
                .unwrap();
            assert_eq!(db.unfinished_jobs().unwrap(), vec![rec.clone()]);
            rec.state = JobState::Completed;
            db.save_job(&rec, Some((2, &RequesterEvent::JobCompleted)))
                .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.job(&id).unwrap(), Some(rec.clone()));
        assert!(
            db.unfinished_jobs().unwrap().is_empty(),
            "completed jobs are not resumed"
        );
        assert_eq!(db.job_counts().unwrap(), vec![("completed".to_string(), 1)]);
        let events = db.events(&id).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].event["event"], "job_completed");
    }

    #[test]
    fn bids_are_counted_a_slice_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("node.db")).unwrap();
        let rec = record();
        let node = NodeKey::from_secret_bytes([2; 32]).node_id();
        let bid = RequesterEvent::BidReceived { node };
        db.save_job(&rec, Some((1, &RequesterEvent::Announced)))
            .unwrap();
        db.save_job(&rec, Some((2, &bid))).unwrap();
        db.save_job(&rec, Some((3, &bid))).unwrap();
        let (bids, last) = db.bids_received_since(0).unwrap();
        assert_eq!((bids, last), (2, 3));
        db.save_job(&rec, Some((4, &bid))).unwrap();
        assert_eq!(db.bids_received_since(last).unwrap(), (1, 4));
        assert_eq!(db.bids_received_since(4).unwrap(), (0, 4));
    }

    #[test]
    fn results_are_recorded_once_and_marked_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("node.db")).unwrap();
        let rec = record();
        let id = rec.job_id();
        let node = NodeKey::from_secret_bytes([2; 32]).node_id();
        db.add_result(&id, 0, &node, "bafkr4i", 3, &["addr".into()])
            .unwrap();
        db.add_result(&id, 0, &node, "other", 4, &[]).unwrap();
        assert_eq!(db.unfetched_results().unwrap().len(), 1);
        db.set_fetched(&id, 0).unwrap();
        let results = db.results(&id).unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].exit_code, 3, "a repeat changes nothing");
        assert_eq!(results[0].providers, vec!["addr".to_string()]);
        assert!(results[0].fetched);
        assert!(db.unfetched_results().unwrap().is_empty());
    }
}
