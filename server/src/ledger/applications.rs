//! What the Argo CD watch asks of the ledger beyond recording facts: which applications
//! of an instance it knows, which history entries it already holds, and marking an
//! application gone. Also what the cluster reader asks: which applications a cluster
//! serves, and where their recorded objects live.

use std::collections::BTreeMap;

use super::{ImageRef, Ledger, LedgerError, on_pool};

impl Ledger {
    /// The applications of an instance not marked deleted, as `(namespace, name)`.
    pub async fn live_applications(&self, instance: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let sql = "SELECT namespace, name FROM applications WHERE instance = $1 AND deleted_at IS NULL
                   ORDER BY namespace, name";
        let rows = on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(instance).fetch_all(p).await?);
        Ok(rows)
    }

    /// Marks an application deleted at `at` (ms); its history stays.
    pub async fn mark_application_deleted(
        &self,
        instance: &str,
        namespace: &str,
        name: &str,
        at: i64,
    ) -> Result<bool, LedgerError> {
        let sql = "UPDATE applications SET deleted_at = $4, updated_at = $4
                   WHERE instance = $1 AND namespace = $2 AND name = $3 AND deleted_at IS NULL";
        let done = on_pool!(self.pool(), |p| {
            sqlx::query(sql).bind(instance).bind(namespace).bind(name).bind(at).execute(p).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The deployments recorded for an application's current incarnation, by history
    /// id, with the images each left running.
    pub async fn recorded_deployments(
        &self,
        instance: &str,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<i64, Vec<ImageRef>>, LedgerError> {
        let sql = "SELECT d.history_id, i.repository, i.tag FROM deployments d
                   JOIN applications a ON a.id = d.application_id
                   LEFT JOIN deployment_images di ON di.deployment_id = d.id AND di.side = 'after'
                   LEFT JOIN images i ON i.id = di.image_id
                   WHERE a.instance = $1 AND a.namespace = $2 AND a.name = $3 AND d.incarnation = a.incarnation
                   ORDER BY d.history_id, i.repository, i.tag";
        let rows: Vec<(i64, Option<String>, Option<String>)> = on_pool!(self.pool(), |p| sqlx::query_as(sql)
            .bind(instance)
            .bind(namespace)
            .bind(name)
            .fetch_all(p)
            .await?);
        let mut recorded: BTreeMap<i64, Vec<ImageRef>> = BTreeMap::new();
        for (history_id, repository, tag) in rows {
            let images = recorded.entry(history_id).or_default();
            if let (Some(repository), Some(tag)) = (repository, tag) {
                images.push(ImageRef { repository, tag });
            }
        }
        Ok(recorded)
    }

    /// The applications deployed to a cluster (their destination's name or server URL is
    /// `cluster`), not marked deleted, each with the namespaces of its recorded resources
    /// of the given kinds: the only places a reading of the cluster can add to them.
    /// Applications with no such resources are left out.
    pub async fn applications_on_cluster(
        &self,
        cluster: &str,
        kinds: &[&str],
    ) -> Result<Vec<ClusterApplication>, LedgerError> {
        let sql = "SELECT DISTINCT a.instance, a.namespace, a.name, r.kind, r.namespace FROM applications a
                   JOIN resources r ON r.application_id = a.id
                   WHERE a.deleted_at IS NULL AND (a.dest_name = $1 OR a.dest_server = $1) AND r.namespace <> ''
                   ORDER BY a.instance, a.namespace, a.name, r.namespace";
        let rows: Vec<(String, String, String, String, String)> =
            on_pool!(self.pool(), |p| sqlx::query_as(sql).bind(cluster).fetch_all(p).await?);
        let mut applications: Vec<ClusterApplication> = Vec::new();
        for (instance, namespace, name, kind, object_namespace) in rows {
            if !kinds.contains(&kind.as_str()) {
                continue;
            }
            let same = applications
                .last()
                .is_some_and(|last| (&last.instance, &last.namespace, &last.name) == (&instance, &namespace, &name));
            if !same {
                applications.push(ClusterApplication { instance, namespace, name, namespaces: Vec::new() });
            }
            let namespaces = &mut applications.last_mut().expect("pushed above").namespaces;
            if !namespaces.contains(&object_namespace) {
                namespaces.push(object_namespace);
            }
        }
        Ok(applications)
    }
}

/// An application a configured cluster serves, as [`Ledger::applications_on_cluster`]
/// finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterApplication {
    pub instance: String,
    pub namespace: String,
    pub name: String,
    /// Where its recorded objects live, sorted.
    pub namespaces: Vec<String>,
}
