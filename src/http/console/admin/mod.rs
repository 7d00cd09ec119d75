//! The admin's pages: people (invite, role, key creation, disable), every
//! key with filters, the registered APIs and their scopes, roles, and the
//! audit log with filters and paging. Only a person whose role grants
//! everything reaches them; anyone else gets 403.

mod apis;
mod audit;
mod keys;
mod people;
mod roles;
mod shared;

use actix_web::web;

use super::resource;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/admin/people")
            .route(web::get().to(people::people))
            .route(web::post().to(people::invite)),
    )
    .service(resource("/admin/people/update").route(web::post().to(people::update_person)))
    .service(resource("/admin/keys").route(web::get().to(keys::all_keys)))
    .service(resource("/admin/audit").route(web::get().to(audit::audit_log)))
    .service(
        resource("/admin/apis")
            .route(web::get().to(apis::apis))
            .route(web::post().to(apis::add_api)),
    )
    .service(resource("/admin/apis/update").route(web::post().to(apis::update_api)))
    .service(
        resource("/admin/roles")
            .route(web::get().to(roles::roles))
            .route(web::post().to(roles::set_role)),
    );
}
