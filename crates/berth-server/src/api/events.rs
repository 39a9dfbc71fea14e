//! Live events over SSE: `GET /api/events` (every deploy's progress, optionally for one
//! project) and `GET /api/deploys/{id}/stream` (one deploy's log, from the start, until it
//! ends, with `progress` events for each layer of the image pull). Keep-alive comments every
//! 15 s; a subscriber too slow to keep up gets a `resync` event (reload what you show)
//! instead of silently missing events; streams end when berth shuts down.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Path, Query};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use berth_deployer::DeployEvent;
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

type EventStream = Sse<
    axum::response::sse::KeepAliveStream<
        futures::stream::BoxStream<'static, Result<Event, Infallible>>,
    >,
>;

fn sse(
    s: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    st: &AppState,
) -> EventStream {
    let stop = st.shutdown.clone();
    Sse::new(s.take_until(async move { stop.cancelled().await }).boxed())
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn event(e: &DeployEvent) -> Event {
    Event::default()
        .event("deploy")
        .json_data(e)
        .unwrap_or_else(|_| Event::default().event("deploy"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    project: Option<String>,
}

pub async fn events(State(st): State<AppState>, Query(q): Query<EventsQuery>) -> EventStream {
    let rx = st.deployer.subscribe();
    let s = stream::unfold((rx, q.project), |(mut rx, project)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if project.as_ref().is_some_and(|p| p != &e.project) => continue,
                // Pull progress goes to the deploy's own stream only.
                Ok(e) if e.progress.is_some() => continue,
                Ok(e) => return Some((Ok(event(&e)), (rx, project))),
                Err(RecvError::Lagged(n)) => {
                    let resync = Event::default()
                        .event("resync")
                        .data(format!("{n} events were dropped; reload"));
                    return Some((Ok(resync), (rx, project)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    sse(s, &st)
}

const TERMINAL: [&str; 5] = [
    "succeeded",
    "failed",
    "rolled_back",
    "cancelled",
    "superseded",
];

pub async fn deploy_stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<EventStream> {
    uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound(format!("no deploy {id}")))?;
    // Subscribe before reading the backlog, so nothing falls between the two.
    let rx = st.deployer.subscribe();
    let d = st.store.deploy(&id).await?;
    let backlog: Vec<Result<Event, Infallible>> = st
        .store
        .deploy_logs(&id, 0)
        .await?
        .into_iter()
        .map(|l| {
            Ok(Event::default()
                .event("log")
                .id(l.id.to_string())
                .data(l.line))
        })
        .collect();
    let done = TERMINAL.contains(&d.state.as_str());
    let state = Event::default().event("state").data(d.state.clone());
    let head = stream::iter(backlog).chain(stream::once(async move { Ok(state) }));
    if done {
        return Ok(sse(head, &st));
    }
    let live = stream::unfold((rx, id, false), |(mut rx, id, finished)| async move {
        if finished {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(e) if e.deploy != id => continue,
                Ok(DeployEvent {
                    progress: Some(p), ..
                }) => {
                    let ev = Event::default()
                        .event("progress")
                        .json_data(&p)
                        .unwrap_or_else(|_| Event::default().event("progress"));
                    return Some((Ok(ev), (rx, id, false)));
                }
                Ok(e) if e.state == "log" => {
                    return Some((
                        Ok(Event::default()
                            .event("log")
                            .data(e.message.unwrap_or_default())),
                        (rx, id, false),
                    ));
                }
                Ok(e) => {
                    let end = TERMINAL.contains(&e.state.as_str());
                    return Some((
                        Ok(Event::default().event("state").data(e.state)),
                        (rx, id, end),
                    ));
                }
                Err(RecvError::Lagged(_)) => {
                    return Some((
                        Ok(Event::default().event("resync").data("reload the deploy")),
                        (rx, id, false),
                    ));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(sse(head.chain(live), &st))
}
