//! Starting the habits example in-process next to a test authd, and calling it.

use crate::helpers::TestApp;
use ::habits::pb::habits_client::HabitsClient;
use ::habits::pb::{self, CreateHabitRequest, DeleteHabitRequest, ListHabitsRequest};
use ::habits::{App, AuthdSettings, Settings};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A running habits service with a SQLite file of its own.
pub struct Habits {
    pub addr: SocketAddr,
    pub client: HabitsClient<Channel>,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), habits::AppError>>>,
}

impl Drop for Habits {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Habits {
    /// Plain local mode (no revocation stream) against `authd`'s JWKS, checking the issuer and
    /// audience the tests give authd.
    pub async fn local(authd: &TestApp) -> Self {
        Self::local_expecting(authd, "http://authd.test", "authd").await
    }

    /// Plain local mode (no revocation stream) against `authd`'s JWKS, expecting the given
    /// `iss` and `aud`.
    pub async fn local_expecting(authd: &TestApp, issuer: &str, audience: &str) -> Self {
        Self::spawn(AuthdSettings::Local {
            jwks_url: format!("http://{}/.well-known/jwks.json", authd.http_addr),
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            revocations: None,
        })
        .await
    }

    /// Revocation-aware local mode (habits' default) against `authd`'s JWKS and revocation
    /// stream, with the given fallback settings.
    pub async fn revocation_aware(
        authd: &TestApp,
        edit: impl FnOnce(&mut authd_verifier::RevocationSettings),
    ) -> Self {
        let mut revocations =
            authd_verifier::RevocationSettings::new(format!("http://{}", authd.grpc_addr));
        edit(&mut revocations);
        Self::spawn(AuthdSettings::Local {
            jwks_url: format!("http://{}/.well-known/jwks.json", authd.http_addr),
            issuer: "http://authd.test".into(),
            audiences: vec!["authd".into()],
            revocations: Some(revocations),
        })
        .await
    }

    /// Remote mode: Introspect on `authd`'s gRPC port.
    pub async fn remote(authd: &TestApp) -> Self {
        Self::spawn(AuthdSettings::Remote {
            endpoint: format!("http://{}", authd.grpc_addr),
            client: None,
        })
        .await
    }

    /// Starts habits and waits until its health says SERVING (in local mode: the keys are in).
    pub async fn spawn(authd: AuthdSettings) -> Self {
        let habits = Self::start(authd).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while habits.health("").await != ServingStatus::Serving as i32 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "habits not SERVING within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        habits
    }

    /// Starts habits without waiting for it to be ready.
    pub async fn start(authd: AuthdSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("habits.db").display()
            ),
            authd,
        };
        let app = App::build(settings).await.expect("habits builds");
        let addr = app.addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        Self {
            addr,
            client: HabitsClient::new(channel),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn health(&self, service: &str) -> i32 {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy();
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map_or(-1, |answer| answer.into_inner().status)
    }

    pub async fn create(
        &mut self,
        token: &str,
        name: &str,
        description: &str,
    ) -> Result<pb::Habit, tonic::Status> {
        let request = CreateHabitRequest {
            name: name.into(),
            description: description.into(),
        };
        self.client
            .create_habit(bearer(request, token))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list(&mut self, token: &str) -> Result<Vec<pb::Habit>, tonic::Status> {
        self.client
            .list_habits(bearer(ListHabitsRequest {}, token))
            .await
            .map(|answer| answer.into_inner().habits)
    }

    pub async fn delete(&mut self, token: &str, id: &str) -> Result<(), tonic::Status> {
        self.client
            .delete_habit(bearer(DeleteHabitRequest { id: id.into() }, token))
            .await
            .map(drop)
    }

    /// The owner of every stored habit, read from habits' SQLite file.
    pub async fn stored_owners(&self) -> Vec<String> {
        use ::habits::store::habit;
        use sea_orm::{EntityTrait, QueryOrder};
        let url = format!("sqlite://{}", self.dir.path().join("habits.db").display());
        let db = sea_orm::Database::connect(&url).await.unwrap();
        let rows = habit::Entity::find()
            .order_by_asc(habit::Column::UserId)
            .all(&db)
            .await
            .unwrap();
        db.close().await.unwrap();
        rows.into_iter()
            .map(|row| row.user_id.to_string())
            .collect()
    }

    /// Stops habits gracefully and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().expect("habits stopped cleanly");
        }
    }
}

/// The services a reflection service (v1 or v1alpha, which share their message shapes) lists.
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection answers without a token")
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
    }};
}

pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub(crate) use list_services;
