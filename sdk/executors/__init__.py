"""Executors that ship with corral (run by agents as separate processes)."""

#: set by the agent when it switches users: the user corral's command executor (which
#: stays the agent's user) runs its task's command as
TASK_USER_ENV = "CORRAL_TASK_USER"
