//! The ttrpc faces of [`Shim`]: one line per Task API and Sandbox API RPC, plus the requests that
//! allocate a lot noting activity for the idle heap trim ([`crate::memory`]).
//! Errors become ttrpc statuses in one place ([`crate::error`]); every request runs
//! [`isolated`], so a panic fails that request only ([`crate::isolate`]).

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::sandbox_api as sb;
use containerd_shim_protos::sandbox_async::Sandbox as SandboxApi;
use containerd_shim_protos::shim_async::Task as TaskApi;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use containerd_shim_protos::ttrpc::Result as TtrpcResult;

use crate::error::Error;
use crate::isolate::isolated;
use crate::shim::Shim;

/// The Task API service over a [`Shim`].
pub struct TaskService(pub Arc<Shim>);

#[async_trait]
impl TaskApi for TaskService {
    async fn create(
        &self,
        _: &TtrpcContext,
        r: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        isolated("create", async move {
            crate::memory::note_activity();
            Ok(self.0.create(r).await?)
        })
        .await
    }
    async fn start(&self, _: &TtrpcContext, r: StartRequest) -> TtrpcResult<StartResponse> {
        isolated("start", async move {
            crate::memory::note_activity();
            Ok(self.0.start(r).await?)
        })
        .await
    }
    async fn wait(&self, _: &TtrpcContext, r: WaitRequest) -> TtrpcResult<WaitResponse> {
        isolated("wait", async move { Ok(self.0.wait(r).await?) }).await
    }
    async fn kill(&self, _: &TtrpcContext, r: KillRequest) -> TtrpcResult<Empty> {
        isolated("kill", async move {
            self.0.kill(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn delete(&self, _: &TtrpcContext, r: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        isolated("delete", async move {
            crate::memory::note_activity();
            Ok(self.0.delete(r).await?)
        })
        .await
    }
    async fn state(&self, _: &TtrpcContext, r: StateRequest) -> TtrpcResult<StateResponse> {
        isolated("state", async move { Ok(self.0.state(r).await?) }).await
    }
    async fn pids(&self, _: &TtrpcContext, r: PidsRequest) -> TtrpcResult<PidsResponse> {
        isolated("pids", async move { Ok(self.0.pids(r).await?) }).await
    }
    async fn connect(&self, _: &TtrpcContext, r: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        isolated("connect", async move { Ok(self.0.connect(r).await?) }).await
    }
    async fn shutdown(&self, _: &TtrpcContext, r: ShutdownRequest) -> TtrpcResult<Empty> {
        isolated("shutdown", async move {
            self.0.shutdown(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn close_io(&self, _: &TtrpcContext, r: CloseIORequest) -> TtrpcResult<Empty> {
        isolated("close_io", async move {
            self.0.close_io(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn exec(&self, _: &TtrpcContext, r: ExecProcessRequest) -> TtrpcResult<Empty> {
        isolated("exec", async move {
            crate::memory::note_activity();
            self.0.exec(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn resize_pty(&self, _: &TtrpcContext, r: ResizePtyRequest) -> TtrpcResult<Empty> {
        isolated("resize_pty", async move {
            self.0.resize_pty(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn pause(&self, _: &TtrpcContext, r: PauseRequest) -> TtrpcResult<Empty> {
        isolated("pause", async move {
            self.0.pause(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn resume(&self, _: &TtrpcContext, r: ResumeRequest) -> TtrpcResult<Empty> {
        isolated("resume", async move {
            self.0.resume(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn update(&self, _: &TtrpcContext, r: UpdateTaskRequest) -> TtrpcResult<Empty> {
        isolated("update", async move {
            crate::memory::note_activity();
            self.0.update(r).await?;
            Ok(Empty::new())
        })
        .await
    }
    async fn stats(&self, _: &TtrpcContext, r: StatsRequest) -> TtrpcResult<StatsResponse> {
        isolated("stats", async move { Ok(self.0.stats(r).await?) }).await
    }
    async fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        Err(Error::Unimplemented("checkpoint: tent does not checkpoint containers".into()).into())
    }
}

/// The Sandbox API service (`containerd.runtime.sandbox.v1.Sandbox`) over a [`Shim`].
pub struct SandboxService(pub Arc<Shim>);

#[async_trait]
impl SandboxApi for SandboxService {
    async fn create_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::CreateSandboxRequest,
    ) -> TtrpcResult<sb::CreateSandboxResponse> {
        isolated("create_sandbox", async move {
            crate::memory::note_activity();
            self.0.create_sandbox(r).await?;
            Ok(sb::CreateSandboxResponse::new())
        })
        .await
    }
    async fn start_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::StartSandboxRequest,
    ) -> TtrpcResult<sb::StartSandboxResponse> {
        isolated("start_sandbox", async move {
            Ok(self.0.sandbox.start(r).await?)
        })
        .await
    }
    async fn platform(
        &self,
        _: &TtrpcContext,
        r: sb::PlatformRequest,
    ) -> TtrpcResult<sb::PlatformResponse> {
        isolated("platform", async move { Ok(self.0.sandbox.platform(r)?) }).await
    }
    async fn stop_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::StopSandboxRequest,
    ) -> TtrpcResult<sb::StopSandboxResponse> {
        isolated("stop_sandbox", async move {
            self.0.sandbox.stop(r)?;
            Ok(sb::StopSandboxResponse::new())
        })
        .await
    }
    async fn wait_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::WaitSandboxRequest,
    ) -> TtrpcResult<sb::WaitSandboxResponse> {
        isolated(
            "wait_sandbox",
            async move { Ok(self.0.sandbox.wait(r).await?) },
        )
        .await
    }
    async fn sandbox_status(
        &self,
        _: &TtrpcContext,
        r: sb::SandboxStatusRequest,
    ) -> TtrpcResult<sb::SandboxStatusResponse> {
        isolated(
            "sandbox_status",
            async move { Ok(self.0.sandbox.status(r)?) },
        )
        .await
    }
    async fn ping_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::PingRequest,
    ) -> TtrpcResult<sb::PingResponse> {
        isolated("ping_sandbox", async move {
            self.0.sandbox.ping(r)?;
            Ok(sb::PingResponse::new())
        })
        .await
    }
    async fn shutdown_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::ShutdownSandboxRequest,
    ) -> TtrpcResult<sb::ShutdownSandboxResponse> {
        isolated("shutdown_sandbox", async move {
            self.0.shutdown_sandbox(r).await?;
            Ok(sb::ShutdownSandboxResponse::new())
        })
        .await
    }
    async fn sandbox_metrics(
        &self,
        _: &TtrpcContext,
        r: sb::SandboxMetricsRequest,
    ) -> TtrpcResult<sb::SandboxMetricsResponse> {
        isolated("sandbox_metrics", async move {
            Ok(self.0.sandbox.metrics(r).await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use containerd_shim_protos::ttrpc::{self, Code};

    use super::*;
    use crate::fake::{FakeRuntime, RecordingSink};

    fn ctx() -> TtrpcContext {
        TtrpcContext {
            mh: Default::default(),
            metadata: HashMap::new(),
            timeout_nano: 0,
        }
    }

    fn create_req(id: &str) -> CreateTaskRequest {
        CreateTaskRequest {
            id: id.to_string(),
            bundle: format!("/run/bundles/{id}"),
            ..Default::default()
        }
    }

    fn internal_panic<T: std::fmt::Debug>(what: &str, r: TtrpcResult<T>) {
        match r {
            Err(ttrpc::Error::RpcStatus(s)) => {
                assert_eq!(s.code(), Code::INTERNAL, "{what}: {s:?}");
                assert!(s.message.contains("panicked"), "{what}: {}", s.message);
            }
            other => panic!("{what}: expected an Internal status, got {other:?}"),
        }
    }

    /// One pod, one shim: a request that panics fails alone, with an Internal status; the
    /// shim goes on serving the pod's other container, and the failed one can be retried
    /// or killed and deleted as containerd does after a failed start.
    #[tokio::test]
    async fn a_panic_fails_its_request_only() {
        let fake = FakeRuntime::new(1000);
        let shim = Arc::new(Shim::new(
            Arc::new(RecordingSink::default()),
            fake.create(),
            "ns1".into(),
        ));
        let svc = TaskService(shim.clone());
        let id = |id: &str| id.to_string();
        svc.create(&ctx(), create_req("app"))
            .await
            .expect("create app");
        let start = |c: &str| StartRequest {
            id: id(c),
            ..Default::default()
        };
        svc.start(&ctx(), start("app")).await.expect("start app");
        let app_served = || async {
            let state = svc
                .state(
                    &ctx(),
                    StateRequest {
                        id: id("app"),
                        ..Default::default()
                    },
                )
                .await
                .expect("the pod's other container is still served");
            assert_eq!(state.pid, 1000);
        };

        fake.panic_once("create");
        internal_panic("create", svc.create(&ctx(), create_req("bad")).await);
        app_served().await;
        let pid = svc
            .create(&ctx(), create_req("bad"))
            .await
            .expect("the id whose create panicked is free again")
            .pid;

        // On the request's own task (not the blocking pool): only `isolated` stands
        // between this panic and the test (in the shim: the whole pod).
        fake.panic_once("oom_watcher");
        internal_panic("create", svc.create(&ctx(), create_req("bad2")).await);
        app_served().await;

        fake.panic_once("start");
        internal_panic("start", svc.start(&ctx(), start("bad")).await);
        app_served().await;
        svc.kill(
            &ctx(),
            KillRequest {
                id: id("bad"),
                signal: 9,
                ..Default::default()
            },
        )
        .await
        .expect("kill after a panicked start");
        shim.on_exit(pid as i32, 137);
        let waited = svc
            .wait(
                &ctx(),
                WaitRequest {
                    id: id("bad"),
                    ..Default::default()
                },
            )
            .await
            .expect("wait");
        assert_eq!(waited.exit_status, 137);
        svc.delete(
            &ctx(),
            DeleteRequest {
                id: id("bad"),
                ..Default::default()
            },
        )
        .await
        .expect("delete after a panicked start");
        app_served().await;
    }
}
