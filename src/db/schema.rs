//! Table definitions shared by both engines. Column types are chosen to map on
//! SQLite and PostgreSQL alike (text IDs, `Timestamp` in UTC, `Binary`).

diesel::table! {
    roles (name) {
        name -> Text,
        scopes -> Text,
        grants_all -> Bool,
        grants_api_scopes -> Bool,
        builtin -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        password_hash -> Nullable<Text>,
        disabled -> Bool,
        can_create_keys -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    apis (id) {
        id -> Text,
        identifier -> Text,
        name -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        approval_scopes -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        client_id -> Text,
        owner_id -> Nullable<Text>,
        name -> Text,
        description -> Text,
        scopes -> Text,
        audiences -> Text,
        secret_hash -> Text,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        rotated_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
        revoked_reason -> Nullable<Text>,
        secret_lookup -> Nullable<Text>,
        previous_secret_lookup -> Nullable<Text>,
        allowed_networks -> Nullable<Text>,
        max_tokens_per_minute -> Nullable<Integer>,
        last_used_from -> Nullable<Text>,
        last_used_user_agent -> Nullable<Text>,
        team_id -> Nullable<Text>,
        pending_since -> Nullable<Timestamp>,
        approved_by -> Nullable<Text>,
        approved_at -> Nullable<Timestamp>,
        auth_method -> Text,
        public_keys -> Nullable<Text>,
        last_used_by -> Nullable<Text>,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        notify_email -> Nullable<Text>,
        description -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    team_members (team_id, user_id) {
        team_id -> Text,
        user_id -> Text,
        added_at -> Timestamp,
    }
}

diesel::table! {
    key_issuance (key_id) {
        key_id -> Text,
        window_start -> BigInt,
        claimed -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key -> Binary,
        public_jwk -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        publish_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Text,
        source_addr -> Nullable<Text>,
        details -> Text,
    }
}

diesel::table! {
    auth_throttle (subject, addr) {
        subject -> Text,
        addr -> Text,
        window_start -> Timestamp,
        failures -> Integer,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Text,
        dedupe_key -> Text,
        key_id -> Nullable<Text>,
        event -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        status -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        expires_at -> Timestamp,
        revoked_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        source_addr -> Nullable<Text>,
        must_enrol -> Bool,
    }
}

diesel::table! {
    account_links (id) {
        id -> Text,
        token_hash -> Text,
        purpose -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    console_forms (form_id) {
        form_id -> Text,
        client_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    change_epochs (id) {
        id -> Integer,
        n -> BigInt,
    }
}

diesel::joinable!(users -> roles (role));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(account_links -> users (user_id));
diesel::joinable!(api_keys -> users (owner_id));
diesel::joinable!(key_issuance -> api_keys (key_id));
diesel::joinable!(api_keys -> teams (team_id));
diesel::joinable!(teams -> roles (role));
diesel::joinable!(team_members -> teams (team_id));
diesel::joinable!(team_members -> users (user_id));

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        description -> Text,
        events -> Text,
        secret_sealed -> Binary,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        event_type -> Text,
        dedupe_key -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_attempt_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));

diesel::table! {
    client_assertion_jtis (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    federations (id) {
        id -> Text,
        name -> Text,
        key_id -> Text,
        issuer -> Text,
        subject_pattern -> Text,
        audience -> Text,
        claims -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(federations -> api_keys (key_id));

diesel::table! {
    sso_identities (user_id) {
        user_id -> Text,
        issuer -> Text,
        subject -> Text,
        first_at -> Timestamp,
        last_at -> Timestamp,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret_sealed -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        passkey -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(sso_identities -> users (user_id));
diesel::joinable!(totp_factors -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    roles,
    users,
    apis,
    api_keys,
    signing_keys,
    audit_events,
    auth_throttle,
    email_outbox,
    revoked_tokens,
    sessions,
    account_links,
    key_issuance,
    console_forms,
    change_epochs,
    teams,
    team_members,
    webhook_endpoints,
    webhook_deliveries,
    client_assertion_jtis,
    federations,
    sso_identities,
    totp_factors,
    recovery_codes,
    passkeys,
);
