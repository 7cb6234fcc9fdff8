"""The Azure Functions app: registrations only. Each body is one line into ``handlers``.

Every trigger, route and schedule of akv-rotator is visible in this file.
"""

import azure.functions as func

from handlers import eventgrid, http, queue, sweep
from handlers.services import get_services

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="keyvault_events")
@app.event_grid_trigger(arg_name="event")
def keyvault_events(event: func.EventGridEvent) -> None:
    """Key Vault SecretNearExpiry / SecretExpired / SecretNewVersionCreated, via Event Grid."""
    eventgrid.handle_event(event, get_services)


@app.function_name(name="rotate_secret")
@app.route(route="secrets/{name}/rotate", methods=[func.HttpMethod.POST])
def rotate_secret(req: func.HttpRequest) -> func.HttpResponse:
    """Rotate a secret now, or plan it: ``POST /api/secrets/{name}/rotate[?vault=NAME&dryRun=true]``."""
    return http.rotate_secret(req, get_services)


@app.function_name(name="secrets")
@app.route(route="secrets", methods=[func.HttpMethod.GET])
def secrets(req: func.HttpRequest) -> func.HttpResponse:
    """Every opted-in secret's state: ``GET /api/secrets[?vault=NAME]``."""
    return http.list_secrets(req, get_services)


@app.function_name(name="secret_rotations")
@app.route(route="secrets/{name}/rotations", methods=[func.HttpMethod.GET])
def secret_rotations(req: func.HttpRequest) -> func.HttpResponse:
    """A secret's rotation history: ``GET /api/secrets/{name}/rotations``."""
    return http.list_rotations(req, get_services)


@app.function_name(name="rotation")
@app.route(route="rotations/{id}", methods=[func.HttpMethod.GET])
def rotation(req: func.HttpRequest) -> func.HttpResponse:
    """One rotation's steps, timings and outcome: ``GET /api/rotations/{id}``."""
    return http.get_rotation(req, get_services)


@app.function_name(name="sweeper")
@app.timer_trigger(arg_name="timer", schedule="%ROTATOR_SWEEP_SCHEDULE%", run_on_startup=False,
                   use_monitor=True)
def sweeper(timer: func.TimerRequest) -> None:
    """Resume stalled rotations, retire what is due, and rotate what events missed."""
    sweep.run_sweep(timer, get_services)


@app.function_name(name="queued_work")
@app.queue_trigger(arg_name="message", queue_name="%ROTATOR_QUEUE%", connection="AzureWebJobsStorage")
def queued_work(message: func.QueueMessage) -> None:
    """One piece of the sweeper's work: rotate a due secret, or resume a rotation."""
    queue.handle_work(message, get_services)


@app.function_name(name="poisoned_work")
@app.queue_trigger(arg_name="message", queue_name="%ROTATOR_QUEUE%-poison",
                   connection="AzureWebJobsStorage")
def poisoned_work(message: func.QueueMessage) -> None:
    """Work the host gave up on after maxDequeueCount deliveries: recorded as failed."""
    queue.handle_poison(message, get_services)


@app.function_name(name="credential_health")
@app.timer_trigger(arg_name="timer", schedule="%ROTATOR_HEALTH_SCHEDULE%", run_on_startup=False,
                   use_monitor=True)
def credential_health(timer: func.TimerRequest) -> None:
    """Prove each opted-in secret's current credential still logs in; count the drift."""
    sweep.run_health_check(timer, get_services)
