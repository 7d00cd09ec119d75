//! A person's keys: the list ([`list`]), creating one ([`new`]), the one
//! page that shows a secret ([`secret`]), a key's page with its
//! activity, usage limits, rotation and revocation ([`detail`]), and giving
//! it to another person or team ([`transfer`]). Admins reach every key;
//! everyone else only their own and their teams' (another's key is "not
//! found", as in the management API): the keys service decides, inside the
//! transaction that acts.

mod detail;
mod form;
mod list;
mod new;
mod secret;
mod shared;
mod transfer;

use actix_web::web;

use super::resource;

pub(super) use detail::{EventRow, event_row};
pub(super) use shared::{KeyRow, caller, row, service};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/keys")
            .route(web::get().to(list::list))
            .route(web::post().to(new::create)),
    )
    .service(resource("/keys/new").route(web::get().to(new::new_form)))
    .service(resource("/keys/{client_id}").route(web::get().to(detail::detail)))
    .service(resource("/keys/{client_id}/rotate").route(web::post().to(detail::rotate)))
    .service(resource("/keys/{client_id}/envelope").route(web::post().to(detail::set_envelope)))
    .service(
        resource("/keys/{client_id}/public-keys").route(web::post().to(detail::set_public_keys)),
    )
    .service(
        resource("/keys/{client_id}/transfer")
            .route(web::get().to(transfer::transfer_page))
            .route(web::post().to(transfer::transfer)),
    )
    .service(
        resource("/keys/{client_id}/revoke")
            .route(web::get().to(detail::revoke_page))
            .route(web::post().to(detail::revoke)),
    );
}
