// A certificate signing thread: holds the current Issuer and issues for the requests it is given.
import { type IssuedCertificate, type IssueRequest, Issuer, type IssuerOptions } from '@portcullis/pki';
import { serveThreadPool } from '@portcullis/runtime/thread';

let issuer: Issuer | undefined;

serveThreadPool<IssuerOptions, IssueRequest, IssuedCertificate>({
  configure(options) {
    issuer = new Issuer(options);
  },
  run(request) {
    if (issuer === undefined) throw new Error('no issuer configured yet');
    return issuer.issue(request);
  },
});
