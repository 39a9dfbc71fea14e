//! The OpenAPI description of the API, generated from the route table: every route's method,
//! path, parameters, summary, who may call it (security and `x-berth-access`), its JSON body
//! where the handler names a type, and berth's error envelope. `berth openapi` prints it,
//! `GET /api/openapi.json` serves it, and a test keeps `docs/openapi.json` equal to it.

use crate::routes::{Access, RouteInfo};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, Content, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    Required, ResponseBuilder,
};

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        other => panic!("the route table has an unexpected method {other}"),
    }
}

fn error_schema() -> ObjectBuilder {
    let inner = ObjectBuilder::new()
        .property("status", ObjectBuilder::new().schema_type(Type::Integer))
        .property("code", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "message",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "Written for the user; 5xx answers carry a fixed text.",
                )),
        )
        .required("status")
        .required("code")
        .required("message");
    ObjectBuilder::new()
        .property("error", inner)
        .required("error")
        .description(Some("Every error berth answers, whatever the route."))
}

/// The document for `table`.
pub fn document(table: &[RouteInfo]) -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .schema("Error", error_schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    let mut paths = Paths::new();
    for r in table {
        let tag = r
            .path
            .trim_start_matches("/api/")
            .split('/')
            .next()
            .unwrap_or("api")
            .to_string();
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .tag(tag)
            .operation_id(Some(format!(
                "{}{}",
                r.method.to_lowercase(),
                r.path
                    .trim_start_matches("/api")
                    .replace(['{', '}'], "")
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let mut c = s.chars();
                        c.next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<String>()
            )));
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        let (access, role) = match r.access {
            Access::Public => ("public".to_string(), None),
            Access::Role(role) => (format!("role:{}", role.as_str()), Some(role)),
        };
        let mut description = match role {
            None => "Public: no login needed.".to_string(),
            Some(role) => format!(
                "Needs the {} role or higher (a session cookie or a Bearer token).",
                role.as_str()
            ),
        };
        if r.method != "GET" && role.is_some() {
            description.push_str(" Cookie sessions must send a same-origin Origin header.");
        }
        op = op.description(Some(description)).extensions(Some(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-berth-access", access)
                .build(),
        ));
        if role.is_some() {
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(SecurityRequirement::new("session", Vec::<String>::new()));
        }
        if let Some(body) = &r.body {
            components = components.schema(body.name.clone(), body.schema.clone());
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(body.name.clone()))),
                    )
                    .build(),
            ));
        }
        op = op.response("2XX", ResponseBuilder::new().description("Success"));
        let errors: &[(&str, &str)] = match role {
            None => &[("400", "Bad input"), ("404", "Not found")],
            Some(_) => &[
                ("400", "Bad input: the message names the field"),
                ("401", "Not logged in"),
                ("403", "The role is too low, or a cross-site write"),
                ("404", "Not found"),
                ("409", "Conflicts with the current state"),
            ],
        };
        for (code, what) in errors {
            op = op.response(
                *code,
                ResponseBuilder::new().description(*what).content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("Error"))),
                ),
            );
        }
        paths.add_path_operation(r.path, vec![method(&r.method)], op.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("berth")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A self-hosted deployment controller for Docker hosts. Generated from the \
                     route table; see README.md for the concepts.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The document as the committed `docs/openapi.json` holds it.
pub fn pretty(table: &[RouteInfo]) -> String {
    let mut s = document(table)
        .to_pretty_json()
        .expect("an OpenAPI document serialises");
    s.push('\n');
    s
}
