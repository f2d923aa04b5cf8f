"""Unity Catalog model registry, simulated (``/api/2.0/mlflow/unity-catalog/...``).

Modelled on MLflow's client for it: ``mlflow/store/_unity_catalog/registry/rest_store.py``
(``UcModelRegistryStore``), ``mlflow/utils/_unity_catalog_utils.py`` (how answers are read,
which credential types exist), ``mlflow/store/artifact/unity_catalog_models_artifact_repo.py``
(how a version's files are read) and the protos ``databricks_uc_registry_messages_pb2`` /
``databricks_uc_registry_service_pb2`` (endpoint table, field names, enums). Requests are parsed
into those protos and answers are built from them, so shapes are MLflow's. The behaviour
(numbering, states, what is refused) is the stand-in's model of Databricks and says so where
it is a guess.

What it does:
- Names are three-level ``catalog.schema.model``; anything else is 400 INVALID_PARAMETER_VALUE
  whose message contains "specify all three levels" (MLflow's client looks for those words).
  Catalogs and schemas exist implicitly. Names are stored lower-case, as UC stores identifiers.
- Versions count from 1 per model, are created ``PENDING_REGISTRATION`` with a
  ``storage_location`` ``s3://<bucket>/models/<model-uuid>/versions/<version-uuid>``, get files
  through ``generate-temporary-credentials`` (``MODEL_VERSION_OPERATION_READ_WRITE``, only while
  pending) and become ``READY`` on ``finalize``, which is refused (400) when no ``MLmodel``
  object exists under the storage location.
- Aliases live on the registered model (``aliases: [{alias, version}]``) and are shown on the
  versions they point at (``get``, ``alias`` GET). Only ``READY`` versions take an alias (a
  guess at UC's rule: it keeps a half-registered version from being promoted).
- ``search`` answers omit ``aliases`` and ``tags`` (MLflow's client drops them from search
  results too: ``model_version_search_from_uc_proto``); call ``get`` for those.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable

from mlflow.protos import databricks_uc_registry_messages_pb2 as uc
from mlflow.protos.databricks_uc_registry_service_pb2 import UcModelRegistryService
from mlflow.utils.rest_utils import extract_api_info_for_service

from standin_common import ApiError, decode_page_token, encode_page_token, invalid, not_found, required
from standin_s3 import CredentialStore, InternalS3

_NAME_PART = r"[^.\s/`]+"
_NAME_RE = re.compile(rf"^{_NAME_PART}\.{_NAME_PART}\.{_NAME_PART}$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
DEFAULT_PAGE = 100

# (path, method) -> request proto class, from MLflow's own table.
ENDPOINTS = {info: cls for cls, info in extract_api_info_for_service(UcModelRegistryService, "/api/2.0").items()}


def _now_ms() -> int:
    return int(time.time() * 1000)


class UcRegistry:
    def __init__(
        self,
        store: CredentialStore,
        s3: InternalS3,
        faults: Callable[[], dict],
        credential_ttl: float,
        run_info: Callable[[str], dict | None],
    ):
        self.store = store
        self.s3 = s3
        self.faults = faults
        self.credential_ttl = credential_ttl
        self.run_info = run_info
        self.lock = threading.RLock()
        self.models: dict[str, dict] = {}
        self.handlers = {
            "CreateRegisteredModelRequest": self.create_registered_model,
            "UpdateRegisteredModelRequest": self.update_registered_model,
            "DeleteRegisteredModelRequest": self.delete_registered_model,
            "GetRegisteredModelRequest": self.get_registered_model,
            "SearchRegisteredModelsRequest": self.search_registered_models,
            "CreateModelVersionRequest": self.create_model_version,
            "UpdateModelVersionRequest": self.update_model_version,
            "DeleteModelVersionRequest": self.delete_model_version,
            "GetModelVersionRequest": self.get_model_version,
            "SearchModelVersionsRequest": self.search_model_versions,
            "GenerateTemporaryModelVersionCredentialsRequest": self.generate_temporary_credentials,
            "GetModelVersionDownloadUriRequest": self.get_download_uri,
            "FinalizeModelVersionRequest": self.finalize_model_version,
            "SetRegisteredModelAliasRequest": self.set_alias,
            "DeleteRegisteredModelAliasRequest": self.delete_alias,
            "GetModelVersionByAliasRequest": self.get_by_alias,
            "SetRegisteredModelTagRequest": self.set_model_tag,
            "DeleteRegisteredModelTagRequest": self.delete_model_tag,
            "SetModelVersionTagRequest": self.set_version_tag,
            "DeleteModelVersionTagRequest": self.delete_version_tag,
            "EmitModelVersionLineageRequest": self.emit_lineage,
            "IsDatabricksSdkModelsArtifactRepositoryEnabledRequest": self.sdk_repo_enabled,
        }

    def handle(self, request, principal: str):
        """The response proto for ``request`` (a parsed request proto)."""
        handler = self.handlers[type(request).__name__]
        with self.lock:
            return handler(request, principal)

    # --- lookups and checks -------------------------------------------------------------------

    @staticmethod
    def _name(request, field: str = "name") -> str:
        name = getattr(request, field)
        if not name:
            raise required(field)
        if not _NAME_RE.match(name):
            raise invalid(
                f"Invalid model name '{name}': please specify all three levels of the name, "
                "in the form <catalog>.<schema>.<model>"
            )
        return name.lower()

    def _model(self, request) -> dict:
        name = self._name(request)
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Registered model '{name}' does not exist.")
        return model

    @staticmethod
    def _version_number(request) -> int:
        if not request.version:
            raise required("version")
        if not re.fullmatch(r"[1-9][0-9]*", request.version):
            raise invalid(f"Invalid model version '{request.version}': must be a positive integer, sent as a string")
        return int(request.version)

    def _version(self, request) -> tuple[dict, dict]:
        model = self._model(request)
        number = self._version_number(request)
        version = model["versions"].get(number)
        if version is None:
            raise not_found(f"Model version '{model['name']}' version {number} does not exist.")
        return model, version

    def _alias_allowed(self, model: dict) -> None:
        if self.faults().get("alias_forbidden"):
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Permission denied on model '{model['name']}': only the owner of the model may set an alias.",
            )

    @staticmethod
    def _alias_name(alias: str) -> str:
        if not alias:
            raise required("alias")
        if not _ALIAS_RE.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV][0-9]+", alias):
            raise invalid(
                f"Invalid alias '{alias}': use letters, digits, '_' and '-'; 'latest' and 'v<number>' are reserved"
            )
        return alias

    # --- building answers ---------------------------------------------------------------------

    @staticmethod
    def _model_proto(model: dict, full: bool = True) -> uc.RegisteredModel:
        proto = uc.RegisteredModel(
            name=model["name"],
            creation_timestamp=model["created"],
            last_updated_timestamp=model["updated"],
            user_id=model["user_id"],
        )
        if model["description"]:
            proto.description = model["description"]
        if full:
            for alias, number in model["aliases"].items():
                proto.aliases.add(alias=alias, version=str(number))
            for key, value in model["tags"].items():
                proto.tags.add(key=key, value=value)
        return proto

    @staticmethod
    def _version_proto(model: dict, version: dict, full: bool = True) -> uc.ModelVersion:
        proto = uc.ModelVersion(
            name=model["name"],
            version=str(version["version"]),
            creation_timestamp=version["created"],
            last_updated_timestamp=version["updated"],
            user_id=version["user_id"],
            source=version["source"],
            status=uc.ModelVersionStatus.Value(version["status"]),
            storage_location=version["storage_location"],
        )
        for field in (
            "description",
            "run_id",
            "run_experiment_id",
            "run_tracking_server_id",
            "status_message",
            "model_id",
        ):
            if version.get(field):
                setattr(proto, field, version[field])
        if full:
            for alias, number in model["aliases"].items():
                if number == version["version"]:
                    proto.aliases.add(alias=alias, version=str(number))
            for key, value in version["tags"].items():
                proto.tags.add(key=key, value=value)
        return proto

    @staticmethod
    def _page(items: list, request) -> tuple[list, str | None]:
        size = request.max_results if request.HasField("max_results") and request.max_results > 0 else DEFAULT_PAGE
        start = decode_page_token(request.page_token)
        page = items[start : start + size]
        return page, encode_page_token(start + size) if start + size < len(items) else None

    # --- registered models --------------------------------------------------------------------

    def create_registered_model(self, request, principal):
        name = self._name(request)
        if name in self.models:
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Registered model '{name}' already exists.")
        now = _now_ms()
        model = {
            "name": name,
            "uuid": uuid.uuid4().hex,
            "created": now,
            "updated": now,
            "user_id": principal,
            "description": request.description,
            "tags": {t.key: t.value for t in request.tags},
            "aliases": {},
            "versions": {},
            "next_version": 1,
        }
        self.models[name] = model
        return uc.CreateRegisteredModelResponse(registered_model=self._model_proto(model))

    def update_registered_model(self, request, principal):
        model = self._model(request)
        if request.HasField("new_name"):
            new_name = self._name(request, "new_name")
            if new_name != model["name"]:
                if new_name in self.models:
                    raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Registered model '{new_name}' already exists.")
                del self.models[model["name"]]
                model["name"] = new_name
                self.models[new_name] = model
        if request.HasField("description"):
            model["description"] = request.description
        model["updated"] = _now_ms()
        return uc.UpdateRegisteredModelResponse(registered_model=self._model_proto(model))

    def delete_registered_model(self, request, principal):
        model = self._model(request)
        del self.models[model["name"]]
        return uc.DeleteRegisteredModelResponse()

    def get_registered_model(self, request, principal):
        return uc.GetRegisteredModelResponse(registered_model=self._model_proto(self._model(request)))

    def search_registered_models(self, request, principal):
        models = [self.models[n] for n in sorted(self.models)]
        page, token = self._page(models, request)
        response = uc.SearchRegisteredModelsResponse(registered_models=[self._model_proto(m, full=False) for m in page])
        if token:
            response.next_page_token = token
        return response

    def set_model_tag(self, request, principal):
        model = self._model(request)
        if not request.key:
            raise required("key")
        model["tags"][request.key] = request.value
        model["updated"] = _now_ms()
        return uc.SetRegisteredModelTagResponse()

    def delete_model_tag(self, request, principal):
        model = self._model(request)
        if not request.key:
            raise required("key")
        if request.key not in model["tags"]:
            raise not_found(f"Tag '{request.key}' does not exist on registered model '{model['name']}'.")
        del model["tags"][request.key]
        model["updated"] = _now_ms()
        return uc.DeleteRegisteredModelTagResponse()

    # --- aliases ------------------------------------------------------------------------------

    def set_alias(self, request, principal):
        model = self._model(request)
        alias = self._alias_name(request.alias)
        number = self._version_number(request)
        version = model["versions"].get(number)
        if version is None:
            raise not_found(f"Model version '{model['name']}' version {number} does not exist.")
        self._alias_allowed(model)
        if version["status"] != "READY":
            raise invalid(
                f"Cannot set alias '{alias}' on '{model['name']}' version {number}: "
                f"the version is {version['status']}, not READY."
            )
        model["aliases"][alias] = number
        model["updated"] = _now_ms()
        return uc.SetRegisteredModelAliasResponse()

    def delete_alias(self, request, principal):
        model = self._model(request)
        alias = self._alias_name(request.alias)
        if alias not in model["aliases"]:
            raise not_found(f"Alias '{alias}' does not exist on registered model '{model['name']}'.")
        self._alias_allowed(model)
        del model["aliases"][alias]
        model["updated"] = _now_ms()
        return uc.DeleteRegisteredModelAliasResponse()

    def get_by_alias(self, request, principal):
        model = self._model(request)
        alias = self._alias_name(request.alias)
        if alias not in model["aliases"]:
            raise not_found(f"Alias '{alias}' does not exist on registered model '{model['name']}'.")
        version = model["versions"][model["aliases"][alias]]
        return uc.GetModelVersionByAliasResponse(model_version=self._version_proto(model, version))

    # --- model versions -----------------------------------------------------------------------

    def create_model_version(self, request, principal):
        model = self._model(request)
        if not request.source:
            raise required("source")
        number = model["next_version"]
        model["next_version"] += 1
        now = _now_ms()
        run_experiment_id = ""
        if request.run_id:
            info = self.run_info(request.run_id)
            run_experiment_id = info["experiment_id"] if info else ""
        version = {
            "version": number,
            "created": now,
            "updated": now,
            "user_id": principal,
            "description": request.description,
            "source": request.source,
            "run_id": request.run_id,
            "run_experiment_id": run_experiment_id,
            "run_tracking_server_id": request.run_tracking_server_id,
            "status": "PENDING_REGISTRATION",
            "status_message": "",
            "storage_location": f"s3://{self.store.bucket}/models/{model['uuid']}/versions/{uuid.uuid4().hex}",
            "tags": {t.key: t.value for t in request.tags},
            "model_id": request.model_id,
        }
        model["versions"][number] = version
        model["updated"] = now
        return uc.CreateModelVersionResponse(model_version=self._version_proto(model, version))

    def update_model_version(self, request, principal):
        model, version = self._version(request)
        if request.HasField("description"):
            version["description"] = request.description
        version["updated"] = _now_ms()
        return uc.UpdateModelVersionResponse(model_version=self._version_proto(model, version))

    def delete_model_version(self, request, principal):
        model, version = self._version(request)
        del model["versions"][version["version"]]
        model["aliases"] = {a: n for a, n in model["aliases"].items() if n != version["version"]}
        model["updated"] = _now_ms()
        return uc.DeleteModelVersionResponse()

    def get_model_version(self, request, principal):
        model, version = self._version(request)
        return uc.GetModelVersionResponse(model_version=self._version_proto(model, version))

    def search_model_versions(self, request, principal):
        wanted = self._parse_filter(request.filter)
        found = []
        for name in sorted(self.models):
            model = self.models[name]
            if "name" in wanted and wanted["name"] != name:
                continue
            for number in sorted(model["versions"], reverse=True):  # newest first
                version = model["versions"][number]
                if "run_id" in wanted and wanted["run_id"] != version["run_id"]:
                    continue
                found.append((model, version))
        page, token = self._page(found, request)
        response = uc.SearchModelVersionsResponse(
            model_versions=[self._version_proto(m, v, full=False) for m, v in page]
        )
        if token:
            response.next_page_token = token
        return response

    @staticmethod
    def _parse_filter(text: str) -> dict:
        wanted = {}
        if not text.strip():
            return wanted
        for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
            match = re.fullmatch(r"\s*(name|run_id)\s*=\s*(['\"])(.*)\2\s*", clause)
            if not match:
                raise invalid(
                    f"Unsupported filter '{text}': supported are name='<catalog>.<schema>.<model>' "
                    "and run_id='<run id>', joined with AND"
                )
            key, value = match.group(1), match.group(3)
            wanted[key] = value.lower() if key == "name" else value
        return wanted

    def set_version_tag(self, request, principal):
        model, version = self._version(request)
        if not request.key:
            raise required("key")
        version["tags"][request.key] = request.value
        version["updated"] = _now_ms()
        return uc.SetModelVersionTagResponse()

    def delete_version_tag(self, request, principal):
        model, version = self._version(request)
        if not request.key:
            raise required("key")
        if request.key not in version["tags"]:
            raise not_found(f"Tag '{request.key}' does not exist on '{model['name']}' version {version['version']}.")
        del version["tags"][request.key]
        version["updated"] = _now_ms()
        return uc.DeleteModelVersionTagResponse()

    def get_download_uri(self, request, principal):
        _, version = self._version(request)
        return uc.GetModelVersionDownloadUriResponse(artifact_uri=version["storage_location"])

    def generate_temporary_credentials(self, request, principal):
        model, version = self._version(request)
        if not request.HasField("operation") or request.operation == uc.MODEL_VERSION_OPERATION_UNSPECIFIED:
            raise required("operation")
        writable = request.operation == uc.MODEL_VERSION_OPERATION_READ_WRITE
        if writable and version["status"] != "PENDING_REGISTRATION":
            raise invalid(
                f"Cannot write to '{model['name']}' version {version['version']}: it is {version['status']}; "
                "files can only be written while the version is PENDING_REGISTRATION."
            )
        prefix = version["storage_location"].split("/", 3)[3]
        operation = uc.ModelVersionOperation.Name(request.operation)
        cred = self.store.issue_temp(
            prefix, writable, self.credential_ttl, f"uc {model['name']} v{version['version']} {operation}"
        )
        credentials = uc.TemporaryCredentials(
            aws_temp_credentials=uc.AwsCredentials(
                access_key_id=cred.access_key, secret_access_key=cred.secret, session_token=cred.session_token
            ),
            expiration_time=int(cred.expires_at * 1000),
            storage_mode=uc.CUSTOMER_HOSTED,
        )
        return uc.GenerateTemporaryModelVersionCredentialsResponse(credentials=credentials)

    def finalize_model_version(self, request, principal):
        model, version = self._version(request)
        if version["status"] == "PENDING_REGISTRATION" and not self.faults().get("stuck_pending"):
            mlmodel = version["storage_location"].split("/", 3)[3] + "/MLmodel"
            if self.s3.head(mlmodel) is None:
                raise invalid(
                    f"Cannot finalize '{model['name']}' version {version['version']}: no MLmodel file at "
                    f"{version['storage_location']}/MLmodel. Upload the model's files (MLmodel included) "
                    "with READ_WRITE temporary credentials before finalizing."
                )
            version["status"] = "READY"
            version["updated"] = _now_ms()
        return uc.FinalizeModelVersionResponse(model_version=self._version_proto(model, version))

    def emit_lineage(self, request, principal):
        self._version(request)
        return uc.EmitModelVersionLineageResponse()

    def sdk_repo_enabled(self, request, principal):
        # False: clients use the temporary-credentials path (S3 through the S3 front), which is
        # what MLflow's client does when the workspace says so.
        return uc.IsDatabricksSdkModelsArtifactRepositoryEnabledResponse(
            is_databricks_sdk_models_artifact_repository_enabled=False
        )
