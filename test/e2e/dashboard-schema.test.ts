import {
  BigValueColorMode,
  BigValueGraphMode,
  BigValueJustifyMode,
  BigValueTextMode,
  DashboardCursorSync,
  FieldColorModeId,
  GraphDrawStyle,
  LegendDisplayMode,
  SortOrder,
  ThresholdsMode,
  TooltipDisplayMode,
  VariableHide,
  VariableRefresh,
  VariableSort,
  VisibilityMode,
  VizOrientation,
  type Dashboard,
  type DataQuery,
  type FieldConfig,
  type FieldConfigSource,
  type GraphFieldConfig,
  type Panel,
  type ReduceDataOptions,
  type VariableModel,
  type VizLegendOptions,
  type VizTooltipOptions,
} from "@grafana/schema";
import type { Options as StatOptions } from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen";
import type { Options as TimeSeriesOptions } from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";
import { expect } from "chai";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../support/cli.js";

/*
 * @grafana/schema is Grafana's own schema, generated from its CUE definitions, as TypeScript types
 * and runtime enums; it ships no JSON validator. So the property names of each object below are
 * listed here, and the compiler checks each list against the schema's type (`satisfies
 * Record<keyof T, true>`: every property, no other); the test then checks the dashboard JSON uses
 * only those names, and enum-typed fields only the schema's values.
 */

/** The property names of a schema type, as a set; the compiler checks the list is complete and exact. */
function names<T>(list: Record<keyof T, true>): ReadonlySet<string> {
  return new Set(Object.keys(list));
}

const DASHBOARD = names<Dashboard>({
  panels: true,
  annotations: true,
  templating: true,
  description: true,
  editable: true,
  fiscalYearStartMonth: true,
  gnetId: true,
  graphTooltip: true,
  id: true,
  links: true,
  liveNow: true,
  preload: true,
  refresh: true,
  revision: true,
  schemaVersion: true,
  snapshot: true,
  tags: true,
  time: true,
  timepicker: true,
  timezone: true,
  title: true,
  uid: true,
  version: true,
  weekStart: true,
});
const PANEL = names<Panel>({
  fieldConfig: true,
  description: true,
  id: true,
  links: true,
  title: true,
  autoMigrateFrom: true,
  cacheTimeout: true,
  datasource: true,
  gridPos: true,
  hideTimeOverride: true,
  interval: true,
  libraryPanel: true,
  maxDataPoints: true,
  maxPerRow: true,
  options: true,
  pluginVersion: true,
  queryCachingTTL: true,
  repeat: true,
  repeatDirection: true,
  targets: true,
  timeCompare: true,
  timeFrom: true,
  timeShift: true,
  transformations: true,
  transparent: true,
  type: true,
});
const FIELD_CONFIG_SOURCE = names<FieldConfigSource>({ defaults: true, overrides: true });
const FIELD_CONFIG = names<FieldConfig>({
  custom: true,
  actions: true,
  color: true,
  decimals: true,
  description: true,
  displayName: true,
  displayNameFromDS: true,
  filterable: true,
  links: true,
  mappings: true,
  max: true,
  min: true,
  noValue: true,
  path: true,
  thresholds: true,
  unit: true,
  writeable: true,
});
const GRAPH_FIELD_CONFIG = names<GraphFieldConfig>({
  drawStyle: true,
  gradientMode: true,
  insertNulls: true,
  showValues: true,
  thresholdsStyle: true,
  transform: true,
  lineColor: true,
  lineInterpolation: true,
  lineStyle: true,
  lineWidth: true,
  spanNulls: true,
  fillBelowTo: true,
  fillColor: true,
  fillOpacity: true,
  pointColor: true,
  pointSize: true,
  pointSymbol: true,
  showPoints: true,
  axisBorderShow: true,
  axisCenteredZero: true,
  axisColorMode: true,
  axisGridShow: true,
  axisLabel: true,
  axisPlacement: true,
  axisSoftMax: true,
  axisSoftMin: true,
  axisWidth: true,
  scaleDistribution: true,
  barAlignment: true,
  barMaxWidth: true,
  barWidthFactor: true,
  stacking: true,
  hideFrom: true,
});
const VARIABLE = names<VariableModel>({
  datasource: true,
  description: true,
  refresh: true,
  options: true,
  type: true,
  allValue: true,
  allowCustomValue: true,
  current: true,
  enableGroupBy: true,
  hide: true,
  includeAll: true,
  label: true,
  multi: true,
  name: true,
  query: true,
  regex: true,
  regexApplyTo: true,
  skipUrlSync: true,
  sort: true,
  staticOptions: true,
  staticOptionsOrder: true,
  valuesFormat: true,
});
/** The schema's common query fields, plus the Prometheus data source's own (not in @grafana/schema). */
const PROMETHEUS_QUERY = new Set([
  ...names<DataQuery>({ key: true, datasource: true, hide: true, queryType: true, refId: true }),
  "expr",
  "legendFormat",
  "range",
  "instant",
  "editorMode",
  "format",
  "interval",
  // PrometheusDataQuery (Grafana's docs, "kinds"): also ask /api/v1/query_exemplars for the series.
  "exemplar",
]);
const TIMESERIES_OPTIONS = names<TimeSeriesOptions>({
  disableKeyboardEvents: true,
  legend: true,
  orientation: true,
  timeCompare: true,
  tooltip: true,
  timezone: true,
  annotations: true,
});
const STAT_OPTIONS = names<StatOptions>({
  colorMode: true,
  graphMode: true,
  justifyMode: true,
  percentChangeColorMode: true,
  showPercentChange: true,
  textMode: true,
  wideLayout: true,
  orientation: true,
  reduceOptions: true,
  text: true,
});
const LEGEND = names<VizLegendOptions>({
  asTable: true,
  calcs: true,
  displayMode: true,
  isVisible: true,
  limit: true,
  overflow: true,
  placement: true,
  showLegend: true,
  sortBy: true,
  sortDesc: true,
  width: true,
});
const TOOLTIP = names<VizTooltipOptions>({
  hideZeros: true,
  maxHeight: true,
  maxWidth: true,
  mode: true,
  sort: true,
});
const REDUCE = names<ReduceDataOptions>({ calcs: true, fields: true, limit: true, values: true });

type Json = Record<string, unknown>;

/** The values of a TypeScript enum (a numeric enum's reverse mapping left out). */
function values(e: Record<string, string | number>): unknown[] {
  return Object.entries(e)
    .filter(([k]) => Number.isNaN(Number(k)))
    .map(([, v]) => v);
}

function dashboards(): { file: string; json: Json }[] {
  const dir = join(REPO_ROOT, "grafana/dashboards");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({ file: f, json: JSON.parse(readFileSync(join(dir, f), "utf8")) as Json }));
}

/** Problems of one object: property names outside the schema's. */
function unknownNames(where: string, value: unknown, allowed: ReadonlySet<string>): string[] {
  if (value === undefined || value === null) return [];
  return Object.keys(value as Json)
    .filter((k) => !allowed.has(k))
    .map((k) => `${where}: "${k}" is not in Grafana's schema`);
}

/** A problem when `value` is set and not one of the enum's values. */
function notIn(where: string, value: unknown, e: Record<string, string | number>): string[] {
  if (value === undefined) return [];
  const allowed = values(e);
  return allowed.includes(value)
    ? []
    : [`${where}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`];
}

function check(file: string, d: Json): string[] {
  const problems = [
    ...unknownNames(file, d, DASHBOARD),
    ...notIn(`${file} graphTooltip`, d.graphTooltip, DashboardCursorSync),
  ];
  const list = ((d.templating as Json | undefined)?.list ?? []) as Json[];
  for (const v of list) {
    const where = `${file} variable ${String(v.name)}`;
    problems.push(
      ...unknownNames(where, v, VARIABLE),
      ...notIn(`${where} hide`, v.hide, VariableHide),
      ...notIn(`${where} refresh`, v.refresh, VariableRefresh),
      ...notIn(`${where} sort`, v.sort, VariableSort),
    );
  }
  for (const p of (d.panels ?? []) as Json[]) {
    const where = `${file} "${String(p.title)}"`;
    const fieldConfig = p.fieldConfig as Json | undefined;
    const defaults = fieldConfig?.defaults as Json | undefined;
    const options = (p.options ?? {}) as Json;
    problems.push(
      ...unknownNames(where, p, PANEL),
      ...unknownNames(`${where} fieldConfig`, fieldConfig, FIELD_CONFIG_SOURCE),
      ...unknownNames(`${where} fieldConfig.defaults`, defaults, FIELD_CONFIG),
      ...notIn(`${where} color.mode`, (defaults?.color as Json | undefined)?.mode, FieldColorModeId),
      ...notIn(`${where} thresholds.mode`, (defaults?.thresholds as Json | undefined)?.mode, ThresholdsMode),
    );
    for (const t of (p.targets ?? []) as Json[])
      problems.push(...unknownNames(`${where} target`, t, PROMETHEUS_QUERY));
    if (p.type === "timeseries") {
      const custom = defaults?.custom as Json | undefined;
      const legend = options.legend as Json | undefined;
      const tooltip = options.tooltip as Json | undefined;
      problems.push(
        ...unknownNames(`${where} custom`, custom, GRAPH_FIELD_CONFIG),
        ...notIn(`${where} drawStyle`, custom?.drawStyle, GraphDrawStyle),
        ...notIn(`${where} showPoints`, custom?.showPoints, VisibilityMode),
        ...unknownNames(`${where} options`, options, TIMESERIES_OPTIONS),
        ...unknownNames(`${where} legend`, legend, LEGEND),
        ...notIn(`${where} legend.displayMode`, legend?.displayMode, LegendDisplayMode),
        ...unknownNames(`${where} tooltip`, tooltip, TOOLTIP),
        ...notIn(`${where} tooltip.mode`, tooltip?.mode, TooltipDisplayMode),
        ...notIn(`${where} tooltip.sort`, tooltip?.sort, SortOrder),
      );
    } else if (p.type === "stat") {
      problems.push(
        ...unknownNames(`${where} options`, options, STAT_OPTIONS),
        ...unknownNames(`${where} reduceOptions`, options.reduceOptions, REDUCE),
        ...notIn(`${where} colorMode`, options.colorMode, BigValueColorMode),
        ...notIn(`${where} graphMode`, options.graphMode, BigValueGraphMode),
        ...notIn(`${where} textMode`, options.textMode, BigValueTextMode),
        ...notIn(`${where} justifyMode`, options.justifyMode, BigValueJustifyMode),
        ...notIn(`${where} orientation`, options.orientation, VizOrientation),
      );
    } else {
      problems.push(`${where}: panel type ${String(p.type)} is not checked here`);
    }
  }
  return problems;
}

describe("Grafana dashboards against Grafana's own schema (@grafana/schema)", () => {
  it("use only the schema's property names and enum values", () => {
    const all = dashboards();
    expect(all).not.to.be.empty;
    expect(all.flatMap(({ file, json }) => check(file, json))).to.deep.equal([]);
  });

  it("finds a misspelt property and a value outside an enum", () => {
    const [first] = dashboards();
    const d = structuredClone(first?.json ?? {});
    const panels = d.panels as Json[];
    const panel = panels.find((p) => p.type === "timeseries") ?? {};
    panel.gridpos = panel.gridPos;
    ((panel.options as Json).tooltip as Json).mode = "several";
    const problems = check("x.json", d);
    expect(problems.some((p) => p.includes('"gridpos" is not in Grafana\'s schema'))).to.equal(true);
    expect(problems.some((p) => p.includes('tooltip.mode: "several" is not one of'))).to.equal(true);
  });
});
