//! [`Storage`] on S3 or any S3-compatible server (custom endpoint, path-style addressing).
//!
//! Credentials come from the config when both keys are set, else from the standard AWS
//! chain (environment, profile, web identity, container and instance metadata). The SDK's
//! own retries are off: the uploader retries with its own backoff and counts failures.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::storage::{Storage, StorageError, StorageFuture};
use crate::config::S3Settings;

/// Recordings in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    endpoint: Option<String>,
}

fn sdk_error<E>(err: SdkError<E, HttpResponse>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let server_side = match &err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            status >= 500 || status == 429
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let message = DisplayErrorContext(&err).to_string();
    if server_side { StorageError::Unavailable(message) } else { StorageError::Refused(message) }
}

impl S3Storage {
    /// Builds the client (no request is made).
    pub async fn new(settings: &S3Settings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(settings.request_timeout_seconds))
                    .build(),
            );
        if let (Some(access), Some(secret)) = (&settings.access_key, &settings.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                access.clone(),
                secret.clone(),
                None,
                None,
                "skyrelay-config",
            ));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style).build();
        S3Storage {
            client: Client::from_conf(conf),
            bucket: settings.bucket.clone(),
            endpoint: settings.endpoint.clone(),
        }
    }

    /// Creates the bucket when it does not exist (tests, first-time setup).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        self.client.create_bucket().bucket(&self.bucket).send().await.map_err(sdk_error)?;
        Ok(())
    }
}

impl Storage for S3Storage {
    fn put<'a>(&'a self, key: &'a str, body: Bytes, content_type: &'static str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(sdk_error)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
                Err(e) => return Err(sdk_error(e)),
            };
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| StorageError::Unavailable(format!("reading {key}: {e}")))?;
            Ok(Some(body.into_bytes()))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut pages =
                self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(sdk_error)?;
                keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(sdk_error)?;
            Ok(())
        })
    }

    fn location(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("s3://{}@{endpoint}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }
}
