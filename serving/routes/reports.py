"""The daily evidently drift reports, served where a user can open them (admin token: they show the
catalogue's distributions). The drift DAG writes them to the object store; this reads them back."""

from __future__ import annotations

import logging
import re
from datetime import date

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from rakuten_ml.errors import ObjectNotFoundError, ObjectStoreError
from rakuten_ml.monitoring.evidently_report import REPORT_PREFIX, report_key
from serving.auth import AdminOnly
from serving.routes.deps import State
from serving.routes.errors import ApiError
from serving.schemas import DriftReportList, DriftReportOut, ErrorOut

log = logging.getLogger(__name__)

_REPORT_KEY = re.compile(rf"^{re.escape(REPORT_PREFIX)}/(\d{{4}}-\d{{2}}-\d{{2}})/data_drift\.html$")

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], dependencies=[AdminOnly],
    responses={401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
               503: {"model": ErrorOut, "description": "admin API disabled, or the object store is unreachable"}},
)


@router.get("/drift", response_model=DriftReportList, summary="The daily data-drift reports, newest first")
def list_drift_reports(state: State) -> DriftReportList:
    try:
        found = [(m.group(1), info.size) for info in state.platform.store.list(REPORT_PREFIX + "/")
                 if (m := _REPORT_KEY.match(info.key))]
    except ObjectStoreError as exc:
        log.warning("cannot list drift reports: %s", exc)
        raise ApiError(503, "store_unavailable", "the object store holding the reports cannot be read; retry later") from None
    reports = [DriftReportOut(check_date=day, size_bytes=size, url=f"/v1/reports/drift/{day}") for day, size in sorted(found, reverse=True)]
    return DriftReportList(reports=reports)


@router.get(
    "/drift/{check_date}", response_class=HTMLResponse, summary="One day's evidently data-drift report (HTML)",
    responses={404: {"model": ErrorOut, "description": "no report for that day"}},
)
def drift_report(check_date: date, state: State) -> HTMLResponse:
    try:
        html = state.platform.store.get_bytes(report_key(check_date))
    except ObjectNotFoundError:
        raise ApiError(404, "not_found", f"no drift report for {check_date.isoformat()}; GET /v1/reports/drift lists them") from None
    except ObjectStoreError as exc:
        log.warning("cannot read the drift report of %s: %s", check_date, exc)
        raise ApiError(503, "store_unavailable", "the object store holding the reports cannot be read; retry later") from None
    return HTMLResponse(html)
