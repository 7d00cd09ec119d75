//! The admin's pages: people (invite, role, key creation, disable with
//! their keys handed over), teams and their members, every key with
//! filters, the requests waiting for approval, the registered APIs and
//! their scopes, roles, the webhook endpoints and their deliveries, the
//! trusted workloads (federations), and the
//! audit log with filters and paging. Only a
//! person whose role grants everything reaches them; anyone else gets 403.

mod apis;
mod audit;
mod federations;
mod keys;
mod leaving;
mod people;
mod requests;
mod roles;
mod shared;
mod teams;
mod webhook;
mod webhooks;

use actix_web::web;

use super::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/admin/people")
            .route(web::get().to(people::people))
            .route(web::post().to(people::invite)),
    )
    .service(resource("/admin/people/update").route(web::post().to(people::update_person)))
    .service(
        resource("/admin/people/disable")
            .route(web::get().to(leaving::confirmation))
            .route(web::post().to(leaving::disable)),
    )
    .service(
        resource("/admin/teams")
            .route(web::get().to(teams::teams_page))
            .route(web::post().to(teams::create_team)),
    )
    .service(
        resource("/admin/teams/{name}")
            .route(web::get().to(teams::team_page))
            .route(web::post().to(teams::update_team)),
    )
    .service(resource("/admin/teams/{name}/state").route(web::post().to(teams::set_team_state)))
    .service(resource("/admin/teams/{name}/members").route(web::post().to(teams::add_member)))
    .service(
        resource("/admin/teams/{name}/members/remove").route(web::post().to(teams::remove_member)),
    )
    .service(resource("/admin/requests").route(web::get().to(requests::requests)))
    .service(resource("/admin/requests/approve").route(web::post().to(requests::approve)))
    .service(resource("/admin/requests/deny").route(web::post().to(requests::deny)))
    .service(resource("/admin/keys").route(web::get().to(keys::all_keys)))
    .service(resource("/admin/audit").route(web::get().to(audit::audit_log)))
    .service(
        resource("/admin/apis")
            .route(web::get().to(apis::apis))
            .route(web::post().to(apis::add_api)),
    )
    .service(resource("/admin/apis/update").route(web::post().to(apis::update_api)))
    .service(resource("/admin/apis/approval").route(web::post().to(apis::set_approval)))
    .service(
        resource("/admin/webhooks")
            .route(web::get().to(webhooks::webhooks_page))
            .route(web::post().to(webhooks::add_endpoint)),
    )
    .service(
        resource("/admin/webhooks/{id}")
            .route(web::get().to(webhook::endpoint_page))
            .route(web::post().to(webhook::update_endpoint)),
    )
    .service(resource("/admin/webhooks/{id}/state").route(web::post().to(webhook::set_state)))
    .service(resource("/admin/webhooks/{id}/test").route(web::post().to(webhook::send_test)))
    .service(
        resource("/admin/webhooks/{id}/deliveries/{delivery_id}/resend")
            .route(web::post().to(webhook::resend)),
    )
    .service(
        resource("/admin/webhooks/{id}/remove")
            .route(web::get().to(webhook::remove_confirmation))
            .route(web::post().to(webhook::remove)),
    )
    .service(
        resource("/admin/federations")
            .route(web::get().to(federations::federations_page))
            .route(web::post().to(federations::add_federation)),
    )
    .service(
        resource("/admin/federations/{name}/remove")
            .route(web::get().to(federations::remove_confirmation))
            .route(web::post().to(federations::remove)),
    )
    .service(
        resource("/admin/roles")
            .route(web::get().to(roles::roles))
            .route(web::post().to(roles::set_role)),
    );
}
