//! The `habits.v1.Habits` handlers: take the caller from the claims the verifier layer put into
//! the request, parse the input, call the store, and map every error to a status in one place.

use crate::input::{InvalidInput, NewHabit, parse_id};
use crate::pb;
use crate::store::{Habit, HabitStore, StoreError};
use authd_verifier::Claims;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The Habits service over a store.
pub struct HabitsGrpc {
    store: HabitStore,
}

impl HabitsGrpc {
    /// Handlers over `store`.
    pub fn new(store: HabitStore) -> Self {
        Self { store }
    }
}

/// Why a call failed, before it becomes a status.
#[derive(Debug, thiserror::Error)]
enum HabitsError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no such habit")]
    NotFound,
    /// No claims in the request: the service was served without the verifier layer.
    #[error("no verified caller")]
    NoCaller,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<HabitsError> for Status {
    fn from(err: HabitsError) -> Self {
        match err {
            HabitsError::Invalid(why) => Status::invalid_argument(why.to_string()),
            HabitsError::NotFound => Status::not_found("no such habit"),
            HabitsError::NoCaller => {
                tracing::error!("a Habits call reached its handler without verified claims");
                Status::unauthenticated("no valid access token")
            }
            HabitsError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::unavailable("the habits database is unavailable; try again")
            }
            HabitsError::Store(StoreError::Query(cause)) => {
                tracing::error!(error = %cause, "database query failed");
                Status::internal("internal error")
            }
        }
    }
}

/// The user the verifier layer found in the access token.
fn caller<T>(request: &Request<T>) -> Result<Uuid, HabitsError> {
    request
        .extensions()
        .get::<Claims>()
        .map(|claims| claims.user_id)
        .ok_or(HabitsError::NoCaller)
}

fn to_pb(habit: Habit) -> pb::Habit {
    pb::Habit {
        id: habit.id.to_string(),
        name: habit.name,
        description: habit.description,
        created_at: Some(prost_types::Timestamp {
            seconds: habit.created_at.timestamp(),
            nanos: i32::try_from(habit.created_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

#[tonic::async_trait]
impl pb::habits_server::Habits for HabitsGrpc {
    async fn create_habit(
        &self,
        request: Request<pb::CreateHabitRequest>,
    ) -> Result<Response<pb::Habit>, Status> {
        let user = caller(&request)?;
        let pb::CreateHabitRequest { name, description } = request.into_inner();
        let new = NewHabit::parse(&name, &description).map_err(HabitsError::from)?;
        let habit = self
            .store
            .create(user, &new)
            .await
            .map_err(HabitsError::from)?;
        tracing::info!(user = %user, habit = %habit.id, "habit created");
        Ok(Response::new(to_pb(habit)))
    }

    async fn list_habits(
        &self,
        request: Request<pb::ListHabitsRequest>,
    ) -> Result<Response<pb::ListHabitsResponse>, Status> {
        let user = caller(&request)?;
        let habits = self.store.list(user).await.map_err(HabitsError::from)?;
        Ok(Response::new(pb::ListHabitsResponse {
            habits: habits.into_iter().map(to_pb).collect(),
        }))
    }

    async fn delete_habit(
        &self,
        request: Request<pb::DeleteHabitRequest>,
    ) -> Result<Response<pb::DeleteHabitResponse>, Status> {
        let user = caller(&request)?;
        let id = parse_id(&request.get_ref().id).map_err(HabitsError::from)?;
        // Another user's habit is not found either: its owner is nobody else's business.
        if !self
            .store
            .delete(user, id)
            .await
            .map_err(HabitsError::from)?
        {
            return Err(HabitsError::NotFound.into());
        }
        tracing::info!(user = %user, habit = %id, "habit deleted");
        Ok(Response::new(pb::DeleteHabitResponse {}))
    }
}
