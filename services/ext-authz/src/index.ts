// @portcullis/ext-authz: the Envoy ext_authz adapter's configuration, for docs and the stack launcher (the service is main.ts).
export { EXT_AUTHZ_CONFIG, type ExtAuthzConfig, extAuthzBusConfig, loadExtAuthzConfig } from './config.ts';
