//! Operations endpoints: liveness, readiness, metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use diesel::connection::SimpleConnection;

use crate::db::Pool;
use crate::http::peer::UnreadableForwarding;
use crate::metrics::Metrics;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// The process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// The database answers. Not ready at once (no waiting for a connection)
/// while the pool knows the database to be down, which the pool logs once
/// per outage rather than each probe.
async fn readyz(pool: web::Data<Pool>) -> HttpResponse {
    let pool = Pool::clone(&pool);
    let ready = web::block(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        pool.check_file()?;
        conn.batch_execute("SELECT 1").map_err(|e| e.to_string())
    })
    .await;
    match ready {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n"),
        Ok(Err(error)) => {
            tracing::debug!(%error, "not ready: database unreachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unreachable\n")
        }
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Who may read `/metrics`: its failure reasons (`unknown_client` against
/// `wrong_secret`) would tell an outsider what the uniform `invalid_client`
/// hides, so it answers only to these networks.
#[derive(Debug, Clone)]
pub struct MetricsAccess {
    pub allow_from: Vec<ipnet::IpNet>,
    /// The client's address is found as for the throttle.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl MetricsAccess {
    fn allows(&self, req: &HttpRequest) -> Result<bool, UnreadableForwarding> {
        let client = crate::http::peer::forwarded_client_ip(req, &self.trusted_proxies)?;
        Ok(client.is_some_and(|ip| self.allow_from.iter().any(|net| net.contains(&ip))))
    }
}

/// 404 to anyone outside `KEYGATE_METRICS_ALLOW_FROM`: as if there were none.
/// 400 to a trusted proxy that forwards no readable address.
async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    access: web::Data<MetricsAccess>,
) -> HttpResponse {
    match access.allows(&req) {
        Ok(true) => {}
        Ok(false) => return HttpResponse::NotFound().finish(),
        Err(unreadable) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(format!("{unreadable}\n"));
        }
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}
