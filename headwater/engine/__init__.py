"""The run engine: flows, tasks, states, futures, task runners and run context.

Users import from the public facades (``headwater``, ``headwater.flows``, ...); this
package is the implementation behind them.
"""
